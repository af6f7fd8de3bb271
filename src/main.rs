//! The `scoreinv` command line: a thin layer over the library.
mod cli;

fn main() {
    // Output piped into a reader that stops early (`scoreinv ... | head`) ends the program as it
    // ends `cat` or `grep`, instead of a panic in `println!` ("failed printing to stdout").
    #[cfg(unix)]
    // SAFETY: restoring the default action of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    scoreinv::runtime::quiet_known_torch_warnings();
    if let Err(e) = cli::run() {
        eprintln!("error: {}", cli::flagify(&format!("{e:#}")));
        // A command stopped by SIGINT/SIGTERM at a safe point exits as an interrupted program.
        let interrupted = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<scoreinv::Error>(),
                Some(scoreinv::Error::Interrupted(_))
            )
        });
        std::process::exit(if interrupted {
            scoreinv::interrupt::EXIT_CODE
        } else {
            1
        });
    }
}
