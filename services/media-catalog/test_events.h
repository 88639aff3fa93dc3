#pragma once

// Synthetic events as the upload and transcode services publish them, for
// the catalog's tests (unit and over real binaries). Each call gives a new
// event id unless `id` is given.

#include <string>

#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::catalog::testing {

using CloudEvent = io::cloudevents::v1::CloudEvent;

// pettube.media.uploaded for "media/{id}" of `owner`, committed at
// `upload_time` (default: 2026-01-01 plus `id`-independent zero).
CloudEvent Uploaded(const std::string& id, const std::string& owner, const std::string& title,
                    absl::Time upload_time = absl::FromUnixSeconds(1767225600));
CloudEvent JobRequested(const std::string& id, const std::string& owner,
                        const std::string& rendition, int64_t generation = 1);
CloudEvent JobProgressed(const std::string& id, const std::string& rendition, double progress,
                         int64_t generation = 1);
// A finished video rendition `rendition` ("720p": 1280x720) or, for
// "poster", the poster image, under "{owner}/{id}/".
CloudEvent JobCompleted(const std::string& id, const std::string& owner,
                        const std::string& rendition, int64_t generation = 1);
CloudEvent JobFailed(const std::string& id, const std::string& rendition, const std::string& error,
                     int64_t generation = 1);
// pettube.media.ready with the 360p rendition, poster and HLS master.
CloudEvent Ready(const std::string& id, const std::string& owner, int64_t generation = 1);
CloudEvent Failed(const std::string& id, const std::string& owner, const std::string& error,
                  int64_t generation = 1);
CloudEvent Deleted(const std::string& id, const std::string& owner);
// pettube.media.updated (the catalog's UpdateMedia) setting the title, and
// the visibility unless UNSPECIFIED, stamped `update_time`.
CloudEvent Updated(
    const std::string& id, const std::string& owner, const std::string& title,
    absl::Time update_time,
    events::v1::MediaVisibility visibility = events::v1::MEDIA_VISIBILITY_UNSPECIFIED);

}  // namespace pettube::catalog::testing
