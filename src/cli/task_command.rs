//! `simulate TASK` and `reconstruct TASK`: one subcommand per entry of the task registry
//! ([`scoreinv::inverse::tasks::TASKS`]), each with the command's shared flags `F` and the
//! task's own (parsed later by the task from [`TaskCommand::matches`]).
use scoreinv::inverse::tasks::{self, Task};

/// The flags a task command shares across tasks.
pub trait SharedFlags: clap::Args + clap::FromArgMatches {
    /// The command's name, for the missing-task error.
    const COMMAND: &'static str;
    /// The help of the shared flags for one task (its default noise, its methods).
    fn task_help(task: &dyn Task, sub: clap::Command) -> clap::Command;
}

/// A task command: the task chosen, the shared flags and the task's matches.
#[derive(Debug)]
pub struct TaskCommand<F> {
    pub task: String,
    pub flags: F,
    pub matches: clap::ArgMatches,
}

impl<F: SharedFlags> clap::FromArgMatches for TaskCommand<F> {
    fn from_arg_matches(m: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let (name, sub) = m.subcommand().ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::MissingSubcommand,
                format!("{} needs a task", F::COMMAND),
            )
        })?;
        Ok(TaskCommand {
            task: name.to_string(),
            flags: F::from_arg_matches(sub)?,
            matches: sub.clone(),
        })
    }
    fn update_from_arg_matches(
        &mut self,
        m: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<F: SharedFlags> clap::Args for TaskCommand<F> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let mut cmd = cmd.subcommand_required(true);
        for t in tasks::TASKS {
            let mut sub = F::augment_args(clap::Command::new(t.name).about(t.about));
            if let Ok(task) = (t.from_json)(serde_json::json!({})) {
                sub = F::task_help(task.as_ref(), sub);
            }
            // The task's help line, not its settings struct's doc comment.
            cmd = cmd.subcommand((t.augment_args)(sub).about(t.about).long_about(None));
        }
        cmd
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `--noise` help with the task's default.
pub fn noise_help(task: &dyn Task, sub: clap::Command) -> clap::Command {
    let noise = format!(
        "Measurement noise of the simulation: none, gaussian:SIGMA (relative to the peak), \
         poisson:I0[:MU] (CT). Default: {}",
        task.default_noise()
    );
    sub.mut_arg("noise", |a| a.help(noise))
}
