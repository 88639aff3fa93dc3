#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"

namespace pettube::broker {

// Who is calling, as the broker's rules need it.
struct Access {
  // The token's "sub": a PetTube identity id ("" without credentials).
  std::string identity;
  // For a workload, its client id at auth-token-exchange (the identity's
  // subject), when it was looked up; "" otherwise.
  std::string client_id;
  // Holds events.admin: may use every subscription.
  bool admin = false;
  // False when the broker runs without credentials (loopback development):
  // nothing is checked.
  bool checked = false;

  // Everything allowed: no credentials are checked.
  static Access Unchecked() { return Access{}; }
};

// What each workload may do beyond its token's scopes, from the broker's
// --publish_policy_file (JSON):
//
//   {"workloads": [
//     {"client_id": "upload",
//      "types": ["pettube.media.uploaded"],
//      "source_prefixes": ["//pettube/upload"]},
//     {"client_id": "transcode-worker",
//      "types": ["pettube.transcode.job.*"],
//      "subscriptions": ["subscriptions/transcode-jobs"]},
//     {"identity": "3f9c...", "types": ["*"]}
//   ]}
//
// A workload is named by "client_id" (its workload client id) or
// "identity" (its identity id, the "sub" of its tokens). "types": event
// types it may publish, exact or ending in "*" (a prefix); "*" alone or an
// absent list means any. "source_prefixes": the event's `source` must
// start with one (absent: any source). Both must hold. A workload not in
// the file may publish nothing. "subscriptions": subscriptions it may use
// (attach, settle, seek, redrive, read dead letters, update, delete) as if
// it owned them, besides those it created.
//
// Without a file (Defaults): any events.publish caller publishes anything,
// and the transcode workers and coordinator (client ids "transcode-worker",
// "transcode-coordinator") share the work queue
// "subscriptions/transcode-jobs", whichever created it (PetTube's own
// services). The supervisor only watches its stats, open to any subscriber.
//
// Immutable after construction; thread-safe.
class AccessPolicy {
 public:
  static AccessPolicy Defaults();
  // INVALID_ARGUMENT naming the entry and field when malformed.
  static absl::StatusOr<AccessPolicy> Parse(absl::string_view json);
  static absl::StatusOr<AccessPolicy> FromFile(const std::string& path);

  // OK, or PERMISSION_DENIED naming the field, the rule and the value.
  absl::Status CheckPublish(const Access& who, const io::cloudevents::v1::CloudEvent& event) const;
  // Whether the policy lets `who` use `subscription` (a name) without
  // owning it.
  bool Grants(const Access& who, absl::string_view subscription) const;
  // Whether any rule names a workload by client id (callers' client ids
  // must then be looked up).
  bool NeedsClientIds() const { return needs_client_ids_; }

 private:
  struct Rule {
    std::vector<std::string> types;  // empty: any
    std::vector<std::string> source_prefixes;
    std::vector<std::string> subscriptions;
  };
  const Rule* Find(const Access& who) const;

  // From a file: a workload not named publishes nothing.
  bool restrict_publish_ = false;
  bool needs_client_ids_ = false;
  absl::flat_hash_map<std::string, Rule> by_client_id_;
  absl::flat_hash_map<std::string, Rule> by_identity_;
};

}  // namespace pettube::broker
