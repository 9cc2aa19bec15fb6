// A mechanism that exists only in the build of scripts/check-new-mechanism
// (CMake -DIPCBENCH_EXTRA_MECHANISM=this file): "dummy", uds-stream's
// endpoint and channel under a name and family of its own. It stands for the
// next mechanism someone adds: the check shows that the conformance and fault
// suites pick it up from the registry with no edit to any test.
#include <memory>
#include <string_view>

#include "mechanisms/mechanism.hpp"

namespace ipcbench::mech {

std::unique_ptr<Mechanism> make_uds_stream();

namespace {

class DummyMechanism : public Mechanism {
 public:
  std::string_view name() const override { return "dummy"; }
  std::string_view family() const override { return "test"; }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  std::unique_ptr<Endpoint> listen(const ListenOptions& options) override {
    return inner_->listen(options);
  }
  std::unique_ptr<Channel> connect(std::string_view address,
                                   const ConnectOptions& options) override {
    return inner_->connect(address, options);
  }

 private:
  std::unique_ptr<Mechanism> inner_ = make_uds_stream();
};

}  // namespace

std::unique_ptr<Mechanism> make_extra_mechanism() { return std::make_unique<DummyMechanism>(); }

}  // namespace ipcbench::mech
