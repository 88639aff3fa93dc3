#include "services/media-catalog/media_view.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/time/proto_time.h"
#include "services/media-catalog/catalog.h"
#include "services/media-catalog/media_event.h"

namespace pettube::catalog {
namespace {

constexpr char kRenditionsBucket[] = "renditions";

// Key segments are [A-Za-z0-9._-]+, never "." or ".." (the object store's
// rule): anything else gets no URL.
bool IsSafeKey(absl::string_view key) {
  size_t start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i < key.size() && key[i] != '/') {
      const char c = key[i];
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
      continue;
    }
    const absl::string_view segment = key.substr(start, i - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = i + 1;
  }
  return true;
}

// Whether "{bucket}/{key}" starts with `prefix`, without building it.
bool PathStartsWith(absl::string_view bucket, absl::string_view key, absl::string_view prefix) {
  if (prefix.size() <= bucket.size()) return absl::StartsWith(bucket, prefix);
  return absl::StartsWith(prefix, bucket) && prefix[bucket.size()] == '/' &&
         absl::StartsWith(key, prefix.substr(bucket.size() + 1));
}

bool IsPoster(const events::v1::TranscodeJobCompleted& r) {
  return r.rendition().kind() == events::v1::POSTER || r.rendition().name() == "poster";
}

// Prerender signs for this expiry; Stamp writes over it. Ten digits, a
// five-byte varint, and bytes (c7 eb ...) that no valid UTF-8 string holds.
constexpr int64_t kReferenceExpiry = 1111111111;
constexpr int64_t kFirstTenDigitSecond = 1000000000;
constexpr int64_t kLastTenDigitSecond = 9999999999;
constexpr size_t kExpiryVarintBytes = 5;

// The varint of a ten-digit number: always five bytes (2^28 <= v < 2^35).
void PutExpiryVarint(int64_t seconds, char* out) {
  uint64_t v = static_cast<uint64_t>(seconds);
  for (size_t i = 0; i < kExpiryVarintBytes; ++i) {
    const uint8_t low = v & 0x7f;
    v >>= 7;
    out[i] = static_cast<char>(i + 1 < kExpiryVarintBytes ? (low | 0x80) : low);
  }
}

// Offsets of the non-overlapping occurrences of `needle` in `hay`.
std::vector<uint32_t> FindAll(absl::string_view hay, absl::string_view needle) {
  std::vector<uint32_t> at;
  for (size_t pos = hay.find(needle); pos != absl::string_view::npos;
       pos = hay.find(needle, pos + needle.size())) {
    at.push_back(static_cast<uint32_t>(pos));
  }
  return at;
}

// How many URLs and url_expire_times RenderAt set.
void CountSigned(const v1::Media& media, size_t* urls, size_t* expiries) {
  auto count_url = [&](const std::string& url) { *urls += url.empty() ? 0 : 1; };
  count_url(media.hls_master_url());
  *expiries += media.has_url_expire_time() ? 1 : 0;
  if (media.has_poster()) {
    count_url(media.poster().url());
    *expiries += media.poster().has_url_expire_time() ? 1 : 0;
  }
  for (const v1::Rendition& r : media.renditions()) {
    count_url(r.url());
    count_url(r.hls_playlist_url());
    *expiries += r.has_url_expire_time() ? 1 : 0;
  }
}

}  // namespace

MediaView::MediaView(std::shared_ptr<const signed_url::UrlSigner> signer, Options options)
    : signer_(std::move(signer)),
      options_(std::move(options)),
      url_base_(absl::StrCat(absl::StripSuffix(options_.objects_url, "/"), "/o/")) {}

void MediaView::SetUrl(absl::string_view bucket, absl::string_view key, absl::string_view prefix,
                       absl::string_view token, std::string* url) const {
  if (token.empty() || key.empty() || !IsSafeKey(key)) return;
  if (bucket.empty()) bucket = kRenditionsBucket;
  if (!PathStartsWith(bucket, key, prefix)) return;
  // Same form as UrlSigner::SignedPath: "/o/{token}/{path}".
  absl::StrAppend(url, url_base_, token, "/", bucket, "/", key);
}

v1::Media MediaView::Render(const StoredMedia& m) const {
  v1::Media out;
  RenderInto(m, &out);
  return out;
}

absl::Time MediaView::Expiry() const {
  return absl::FromUnixSeconds(absl::ToUnixSeconds(options_.now() + options_.url_ttl));
}

std::string MediaView::TokenPrefix(const StoredMedia& m) {
  return absl::StrCat(kRenditionsBucket, "/", m.owner(), "/", m.media_id(), "/");
}

void MediaView::RenderInto(const StoredMedia& m, v1::Media* out) const {
  RenderAt(m, Expiry(), out);
}

void MediaView::RenderAt(const StoredMedia& m, absl::Time expire, v1::Media* out_ptr) const {
  out_ptr->Clear();
  v1::Media& out = *out_ptr;
  const std::string prefix = TokenPrefix(m);
  const bool signing = signer_ != nullptr && !m.owner().empty();
  // One token covers every object of the item: one HMAC per render.
  const std::string token = signing ? signer_->Sign(prefix, expire) : "";
  const google::protobuf::Timestamp expire_time = time::ToProto(expire);
  out.set_name(absl::StrCat("media/", m.media_id()));
  out.set_owner(m.owner());
  out.set_title(m.title());
  out.set_description(m.description());
  out.set_visibility(m.visibility() == v1::VISIBILITY_UNSPECIFIED ? v1::PRIVATE : m.visibility());
  out.set_state(DerivedState(m));
  out.set_error(m.error());
  out.set_progress(DerivedProgress(m));
  *out.mutable_create_time() = m.create_time();
  *out.mutable_update_time() = m.update_time();
  out.set_etag(Etag(m));
  v1::Source* source = out.mutable_source();
  source->set_size_bytes(m.source().size_bytes());
  source->set_sha256(m.source().sha256());
  source->set_content_type(m.source().content_type());
  const events::v1::SourceInfo& info = m.source_info();
  source->set_width(info.display_width() > 0 ? info.display_width() : info.width());
  source->set_height(info.display_height() > 0 ? info.display_height() : info.height());
  if (info.has_duration()) *source->mutable_duration() = info.duration();
  source->set_container(info.container());
  source->set_video_codec(info.video_codec());
  source->set_audio_codec(info.audio_codec());

  std::vector<const events::v1::TranscodeJobCompleted*> videos;
  for (const auto& [name, r] : m.renditions()) {
    if (IsPoster(r)) {
      v1::Rendition* poster = out.mutable_poster();
      poster->set_name(r.rendition().name());
      poster->set_width(r.rendition().width());
      poster->set_height(r.rendition().height());
      poster->set_size_bytes(r.output().size_bytes());
      poster->set_content_type(r.output().content_type().empty() ? "image/jpeg"
                                                                 : r.output().content_type());
      poster->set_sha256(r.output().sha256());
      poster->set_format(r.rendition().format());
      SetUrl(r.output().store(), r.output().key(), prefix, token, poster->mutable_url());
      if (signing) *poster->mutable_url_expire_time() = expire_time;
    } else {
      videos.push_back(&r);
    }
  }
  std::sort(videos.begin(), videos.end(), [](const auto* a, const auto* b) {
    if (a->rendition().height() != b->rendition().height()) {
      return a->rendition().height() > b->rendition().height();
    }
    return a->rendition().name() < b->rendition().name();
  });
  for (const auto* r : videos) {
    v1::Rendition* v = out.add_renditions();
    const events::v1::RenditionSpec& spec = r->rendition();
    v->set_name(spec.name());
    v->set_width(spec.width());
    v->set_height(spec.height());
    v->set_bitrate_kbps(spec.video_bitrate_kbps());
    v->set_audio_bitrate_kbps(spec.audio_bitrate_kbps());
    v->set_video_codec(spec.video_codec());
    v->set_audio_codec(spec.audio_codec());
    v->set_format(spec.format());
    v->set_size_bytes(r->output().size_bytes());
    v->set_sha256(r->output().sha256());
    v->set_content_type(r->output().content_type().empty() ? "video/mp4"
                                                           : r->output().content_type());
    if (r->has_duration()) *v->mutable_duration() = r->duration();
    SetUrl(r->output().store(), r->output().key(), prefix, token, v->mutable_url());
    SetUrl(r->hls_playlist().store(), r->hls_playlist().key(), prefix, token,
           v->mutable_hls_playlist_url());
    if (signing) *v->mutable_url_expire_time() = expire_time;
  }
  SetUrl(kRenditionsBucket, m.hls_master_key(), prefix, token, out.mutable_hls_master_url());
  if (signing) *out.mutable_url_expire_time() = expire_time;
}

std::shared_ptr<const RenderedMedia> MediaView::Prerender(const StoredMedia& m) const {
  const absl::Time reference = absl::FromUnixSeconds(kReferenceExpiry);
  v1::Media media;
  RenderAt(m, reference, &media);
  auto rendered = std::make_shared<RenderedMedia>();
  rendered->owner = m.owner();
  rendered->visibility = m.visibility();
  rendered->listed = IsListed(m);
  rendered->wire = media.SerializeAsString();
  size_t urls = 0;
  size_t expiries = 0;
  CountSigned(media, &urls, &expiries);
  if (urls > 0) {
    rendered->token_prefix = TokenPrefix(m);
    const std::string token = signer_->Sign(rendered->token_prefix, reference);
    rendered->token_size = token.size();
    rendered->token_offsets = FindAll(rendered->wire, token);
    // Each URL holds its token once; any other hit is a field that happens
    // to hold it, which stamping would overwrite.
    if (rendered->token_offsets.size() != urls) return nullptr;
  }
  if (expiries > 0) {
    // A Timestamp of whole seconds: field 1 as a varint (tag 0x08), no nanos.
    char pattern[1 + kExpiryVarintBytes] = {0x08};
    PutExpiryVarint(kReferenceExpiry, pattern + 1);
    rendered->expiry_offsets = FindAll(rendered->wire, absl::string_view(pattern, sizeof(pattern)));
    if (rendered->expiry_offsets.size() != expiries) return nullptr;
    for (uint32_t& at : rendered->expiry_offsets) ++at;  // past the tag
  }
  return rendered;
}

bool MediaView::Stamp(const RenderedMedia& rendered, char* out) const {
  std::memcpy(out, rendered.wire.data(), rendered.wire.size());
  if (rendered.token_offsets.empty() && rendered.expiry_offsets.empty()) return true;
  const absl::Time expire = Expiry();
  const int64_t seconds = absl::ToUnixSeconds(expire);
  if (seconds < kFirstTenDigitSecond || seconds > kLastTenDigitSecond) return false;
  if (!rendered.token_offsets.empty()) {
    const std::string token = signer_->Sign(rendered.token_prefix, expire);
    // Ten digits keep the token's length; checked all the same.
    if (token.size() != rendered.token_size) return false;
    for (uint32_t at : rendered.token_offsets) std::memcpy(out + at, token.data(), token.size());
  }
  char varint[kExpiryVarintBytes];
  PutExpiryVarint(seconds, varint);
  for (uint32_t at : rendered.expiry_offsets) std::memcpy(out + at, varint, sizeof(varint));
  return true;
}

}  // namespace pettube::catalog
