#include "services/media-catalog/test_events.h"

#include "absl/strings/str_cat.h"
#include "libs/broker_client/event_builder.h"
#include "libs/time/proto_time.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/media-catalog/media_event.h"

namespace pettube::catalog::testing {
namespace {

constexpr char kUpload[] = "//pettube/upload";
constexpr char kCoordinator[] = "//pettube/transcode-coordinator";
constexpr char kWorker[] = "//pettube/transcode-worker";

CloudEvent Make(const char* type, const char* source, const std::string& id,
                const google::protobuf::Message& payload) {
  CloudEvent e = broker_client::NewEvent(type, source, absl::StrCat("media/", id), payload);
  broker_client::SetPartitionKey(&e, id);
  return e;
}

std::string Job(const std::string& id, const std::string& rendition) {
  return absl::StrCat("media/", id, "/jobs/", rendition);
}

events::v1::TranscodeJobCompleted Completion(const std::string& id, const std::string& owner,
                                             const std::string& rendition, int64_t generation) {
  events::v1::TranscodeJobCompleted c;
  c.set_job(Job(id, rendition));
  c.set_media(absl::StrCat("media/", id));
  c.set_generation(generation);
  c.set_attempt(1);
  events::v1::RenditionSpec* spec = c.mutable_rendition();
  spec->set_name(rendition);
  events::v1::ObjectRef* out = c.mutable_output();
  out->set_store("renditions");
  if (rendition == "poster") {
    spec->set_kind(events::v1::POSTER);
    spec->set_width(640);
    spec->set_height(360);
    spec->set_format("jpeg");
    out->set_key(absl::StrCat(owner, "/", id, "/poster.jpg"));
    out->set_content_type("image/jpeg");
    out->set_size_bytes(12345);
  } else {
    const int height = rendition == "720p" ? 720 : rendition == "480p" ? 480 : 360;
    spec->set_kind(events::v1::VIDEO);
    spec->set_width(height * 16 / 9 / 2 * 2);
    spec->set_height(height);
    spec->set_video_bitrate_kbps(height * 4);
    spec->set_audio_bitrate_kbps(128);
    spec->set_video_codec("h264");
    spec->set_audio_codec("aac");
    spec->set_format("mp4/h264/aac");
    out->set_key(absl::StrCat(owner, "/", id, "/", rendition, ".mp4"));
    out->set_content_type("video/mp4");
    out->set_size_bytes(100000 + height);
    *c.mutable_duration() = time::ToProto(absl::Seconds(2));
    c.mutable_hls_playlist()->set_store("renditions");
    c.mutable_hls_playlist()->set_key(absl::StrCat(owner, "/", id, "/hls/", rendition, ".m3u8"));
    c.set_codecs("avc1.640028,mp4a.40.2");
  }
  return c;
}

}  // namespace

CloudEvent Uploaded(const std::string& id, const std::string& owner, const std::string& title,
                    absl::Time upload_time) {
  events::v1::MediaUploaded p;
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  p.set_title(title);
  p.mutable_source()->set_store("originals");
  p.mutable_source()->set_key(absl::StrCat(owner, "/", id, "/source"));
  p.mutable_source()->set_size_bytes(4242);
  p.mutable_source()->set_sha256(std::string(64, 'a'));
  p.mutable_source()->set_content_type("video/mp4");
  *p.mutable_upload_time() = time::ToProto(upload_time);
  return Make(kMediaUploaded, kUpload, id, p);
}

CloudEvent JobRequested(const std::string& id, const std::string& owner,
                        const std::string& rendition, int64_t generation) {
  events::v1::TranscodeJobRequested p;
  p.set_job(Job(id, rendition));
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  p.set_generation(generation);
  p.mutable_rendition()->set_name(rendition);
  p.mutable_source_info()->set_width(1280);
  p.mutable_source_info()->set_height(720);
  *p.mutable_source_info()->mutable_duration() = time::ToProto(absl::Seconds(2));
  p.mutable_source_info()->set_container("mov,mp4,m4a,3gp,3g2,mj2");
  p.mutable_source_info()->set_video_codec("h264");
  return Make(kJobRequested, kCoordinator, id, p);
}

CloudEvent JobProgressed(const std::string& id, const std::string& rendition, double progress,
                         int64_t generation) {
  events::v1::TranscodeJobProgressed p;
  p.set_job(Job(id, rendition));
  p.set_media(absl::StrCat("media/", id));
  p.set_progress(progress);
  p.set_generation(generation);
  p.set_worker("w1");
  return Make(kJobProgressed, kWorker, id, p);
}

CloudEvent JobCompleted(const std::string& id, const std::string& owner,
                        const std::string& rendition, int64_t generation) {
  return Make(kJobCompleted, kWorker, id, Completion(id, owner, rendition, generation));
}

CloudEvent JobFailed(const std::string& id, const std::string& rendition, const std::string& error,
                     int64_t generation) {
  events::v1::TranscodeJobFailed p;
  p.set_job(Job(id, rendition));
  p.set_media(absl::StrCat("media/", id));
  p.set_error(error);
  p.set_generation(generation);
  return Make(kJobFailed, kWorker, id, p);
}

CloudEvent Ready(const std::string& id, const std::string& owner, int64_t generation) {
  events::v1::MediaReady p;
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  p.set_generation(generation);
  p.mutable_source_info()->set_width(1280);
  p.mutable_source_info()->set_height(720);
  p.mutable_source_info()->set_container("mov,mp4,m4a,3gp,3g2,mj2");
  p.mutable_source_info()->set_video_codec("h264");
  p.mutable_source_info()->set_audio_codec("aac");
  *p.mutable_source_info()->mutable_duration() = time::ToProto(absl::Seconds(2));
  *p.add_renditions() = Completion(id, owner, "360p", generation);
  *p.add_renditions() = Completion(id, owner, "poster", generation);
  p.mutable_master_playlist()->set_store("renditions");
  p.mutable_master_playlist()->set_key(absl::StrCat(owner, "/", id, "/hls/master.m3u8"));
  p.mutable_poster()->set_store("renditions");
  p.mutable_poster()->set_key(absl::StrCat(owner, "/", id, "/poster.jpg"));
  return Make(kMediaReady, kCoordinator, id, p);
}

CloudEvent Failed(const std::string& id, const std::string& owner, const std::string& error,
                  int64_t generation) {
  events::v1::MediaFailed p;
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  p.set_error(error);
  p.set_generation(generation);
  return Make(kMediaFailed, kCoordinator, id, p);
}

CloudEvent Updated(const std::string& id, const std::string& owner, const std::string& title,
                   absl::Time update_time, events::v1::MediaVisibility visibility) {
  events::v1::MediaUpdated p;
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  p.add_paths("title");
  p.set_title(title);
  if (visibility != events::v1::MEDIA_VISIBILITY_UNSPECIFIED) {
    p.add_paths("visibility");
    p.set_visibility(visibility);
  }
  *p.mutable_update_time() = time::ToProto(update_time);
  return Make(kMediaUpdated, kCatalogSource, id, p);
}

CloudEvent Deleted(const std::string& id, const std::string& owner) {
  events::v1::MediaDeleted p;
  p.set_media(absl::StrCat("media/", id));
  p.set_owner(owner);
  return Make(kMediaDeleted, kCatalogSource, id, p);
}

}  // namespace pettube::catalog::testing
