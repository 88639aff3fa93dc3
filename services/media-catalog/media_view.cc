#include "services/media-catalog/media_view.h"

#include <algorithm>
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

void MediaView::RenderInto(const StoredMedia& m, v1::Media* out_ptr) const {
  out_ptr->Clear();
  v1::Media& out = *out_ptr;
  const absl::Time expire = options_.now() + options_.url_ttl;
  const std::string prefix =
      absl::StrCat(kRenditionsBucket, "/", m.owner(), "/", m.media_id(), "/");
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

}  // namespace pettube::catalog
