#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace pettube::storage {

// A rocksdb::Status as an absl::Status, message prefixed with `what`. The
// one place RocksDB errors become ours: a locked directory (another
// process owns it), busy or timed out is UNAVAILABLE (retry or fix the
// deployment), corruption DATA_LOSS, the rest INTERNAL.
absl::Status FromRocksDb(const rocksdb::Status& status, absl::string_view what);

}  // namespace pettube::storage
