#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "libs/signed_url/url_signer.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"
#include "services/media-catalog/media_store.h"
#include "services/media-catalog/rendered_media.h"

namespace pettube::catalog {

// Turns a stored record into the API's Media, minting fresh signed URLs
// for every rendition, the poster and the HLS master playlist on each call.
// One token covers "renditions/{owner}/{media_id}/", so the relative
// references inside the HLS playlists stay signed. Objects outside that
// prefix get no URL (never sign what is not the item's own).
//
// Without a signer (no --url_signing_keys_file) URLs are left empty. URLs
// expire on a whole second (the token's own resolution).
// Immutable, so thread-safe.
class MediaView {
 public:
  struct Options {
    // Base of the object server, e.g. "http://127.0.0.1:8081".
    std::string objects_url;
    // Lifetime of each URL.
    absl::Duration url_ttl = absl::Hours(1);
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  MediaView(std::shared_ptr<const signed_url::UrlSigner> signer, Options options);

  v1::Media Render(const StoredMedia& media) const;
  // Render into `out` (cleared first), e.g. a response on an arena.
  void RenderInto(const StoredMedia& media, v1::Media* out) const;

  // `media` rendered once for Stamp (rendered_media.h). Null in the rare
  // case its bytes cannot be stamped in place (another field happens to
  // hold the reference token or expiry): render it instead.
  std::shared_ptr<const RenderedMedia> Prerender(const StoredMedia& media) const;
  // Writes into `out` (rendered.wire.size() bytes) what RenderInto would
  // give now, serialized. False, `out` unusable, when now's expiry has not
  // ten digits (a clock before 2001 or after 2286): render instead.
  bool Stamp(const RenderedMedia& rendered, char* out) const;

 private:
  // When URLs minted now expire.
  absl::Time Expiry() const;
  // What one token covers: "renditions/{owner}/{media_id}/".
  static std::string TokenPrefix(const StoredMedia& media);
  void RenderAt(const StoredMedia& media, absl::Time expire, v1::Media* out) const;
  // Appends to `url` (empty) the signed URL of bucket/key under `token`
  // (for `prefix`); leaves it empty when the object is not the item's own
  // or there is no token.
  void SetUrl(absl::string_view bucket, absl::string_view key, absl::string_view prefix,
              absl::string_view token, std::string* url) const;

  const std::shared_ptr<const signed_url::UrlSigner> signer_;
  const Options options_;
  // "{objects_url}/o/".
  const std::string url_base_;
};

}  // namespace pettube::catalog
