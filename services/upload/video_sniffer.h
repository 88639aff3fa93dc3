#pragma once

// Recognises video containers by their first bytes, so a file that is not
// a video is refused before any of it is stored.

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace pettube::upload {

// Bytes of a file's start the sniffer wants (MPEG-TS needs the second sync
// byte at 188); a shorter file is sniffed whole.
inline constexpr size_t kSniffBytes = 512;

// The container's name ("mp4", "matroska", "avi", "mpegts", "mpegps",
// "flv", "ogg", "asf"), or nullopt when `head` starts no known video
// container.
std::optional<std::string> SniffVideoContainer(absl::string_view head);

}  // namespace pettube::upload
