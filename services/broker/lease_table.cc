#include "services/broker/lease_table.h"

namespace pettube::broker {

std::vector<LeaseKey> LeaseTable::ExpiredBy(absl::Time now) const {
  std::vector<LeaseKey> expired;
  for (auto d = deadlines_.begin(); d != deadlines_.end() && d->first <= now; ++d) {
    expired.push_back(d->second);
  }
  return expired;
}

std::vector<std::pair<LeaseKey, ConsumerId>> LeaseTable::Holders() const {
  std::vector<std::pair<LeaseKey, ConsumerId>> out;
  out.reserve(leases_.size());
  for (const auto& [key, lease] : leases_) out.emplace_back(key, lease.consumer);
  return out;
}

void LeaseTable::Clear(Clock& clock) {
  leases_.clear();
  deadlines_.clear();
  expiry_timer_.Cancel(clock);
}

}  // namespace pettube::broker
