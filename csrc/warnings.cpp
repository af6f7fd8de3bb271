// A libtorch warning handler that drops the warnings scoreinv knows to be noise for its users
// ("Sparse CSR tensor support is in beta state", printed on the first CSR tensor, which every
// CT operator builds) and passes every other warning on to the handler it replaces.
#include <c10/util/Exception.h>
#include <string>

namespace {
struct Filter final : c10::WarningHandler {
  c10::WarningHandler* next = nullptr;
  void process(const c10::Warning& w) override {
    if (w.msg().find("Sparse CSR tensor support is in beta state") != std::string::npos) {
      return;
    }
    if (next != nullptr) {
      next->process(w);
    }
  }
};
}  // namespace

// Installs the filter for the calling thread (libtorch's warning handler is per thread).
extern "C" void scoreinv_filter_torch_warnings() {
  static thread_local Filter filter;
  if (c10::WarningUtils::get_warning_handler() == &filter) {
    return;
  }
  filter.next = c10::WarningUtils::get_warning_handler();
  c10::WarningUtils::set_warning_handler(&filter);
}
