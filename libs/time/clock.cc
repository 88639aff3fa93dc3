#include "libs/time/clock.h"

#include "absl/time/clock.h"

namespace pettube::time {
namespace {

class SystemClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }

  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override {
    return mu.AwaitWithDeadline(cond, deadline);
  }
};

}  // namespace

const Clock& RealClock() {
  static const SystemClock* const clock = new SystemClock();
  return *clock;
}

}  // namespace pettube::time
