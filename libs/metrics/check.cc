#include "libs/metrics/check.h"

#include <cstdio>
#include <cstdlib>

namespace pettube::metrics::internal {

void Die(absl::string_view message) {
  std::fprintf(stderr, "pettube::metrics: %.*s\n",
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace pettube::metrics::internal
