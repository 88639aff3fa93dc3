// The projection's decoding and merge rules: precise refusals for events
// that can never apply, and convergence of the same events in any order.

#include "services/media-catalog/media_event.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "services/media-catalog/test_events.h"

namespace pettube::catalog {
namespace {

using ::google::protobuf::util::MessageDifferencer;
namespace t = ::pettube::catalog::testing;

StoredMedia Project(const std::vector<io::cloudevents::v1::CloudEvent>& events) {
  StoredMedia media;
  media.set_media_id("m1");
  for (const auto& e : events) {
    auto decoded = DecodeEvent(e);
    EXPECT_TRUE(decoded.ok()) << decoded.status();
    if (decoded.ok()) MergeEvent(*decoded, &media);
  }
  return media;
}

// Projects every order of `events` and expects `expected` from each;
// returns how many orders were tried (stops at the first mismatch).
int ExpectEveryOrderGives(const std::vector<io::cloudevents::v1::CloudEvent>& events,
                          const StoredMedia& expected) {
  std::vector<int> order(events.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  int permutations = 0;
  do {
    std::vector<io::cloudevents::v1::CloudEvent> shuffled;
    for (int i : order) shuffled.push_back(events[i]);
    const StoredMedia got = Project(shuffled);
    const bool same = MessageDifferencer::Equals(got, expected);
    EXPECT_TRUE(same) << "order #" << permutations << ":\n"
                      << got.DebugString() << "\nvs\n"
                      << expected.DebugString();
    if (!same) return permutations;
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  return permutations;
}

void ExpectInvalid(const io::cloudevents::v1::CloudEvent& e, absl::string_view words) {
  auto decoded = DecodeEvent(e);
  ASSERT_TRUE(absl::IsInvalidArgument(decoded.status())) << decoded.status();
  EXPECT_NE(decoded.status().message().find(words), absl::string_view::npos)
      << decoded.status().message();
}

TEST(DecodeEventTest, RefusesWhatCanNeverApplyNamingTheField) {
  auto e = t::Uploaded("m1", "alice", "cat");
  e.set_type("pettube.media.uploadedd");
  ExpectInvalid(e, "event.type: unknown event type \"pettube.media.uploadedd\"");

  e = t::Uploaded("m1", "alice", "cat");
  e.set_source("//evil");
  ExpectInvalid(e, "event.source: pettube.media.uploaded must come from \"//pettube/upload\"");

  e = t::Uploaded("m1", "alice", "cat");
  e.mutable_proto_data()->set_value("\xff\xff\xff garbage");
  ExpectInvalid(e, "event.data");

  e = t::Ready("m1", "alice");
  e.set_type("pettube.media.uploaded");
  e.set_source("//pettube/upload");
  ExpectInvalid(e, "event.data");  // a MediaReady payload is not a MediaUploaded

  e = t::Uploaded("../etc", "alice", "cat");
  ExpectInvalid(e, "event.data.media: media id must be of [A-Za-z0-9._-]");

  e = t::Uploaded("m1", "alice", "cat");
  (*e.mutable_attributes())["subject"].set_ce_string("media/m2");
  ExpectInvalid(e, "event.subject: \"media/m2\" names another media item");

  e = t::Uploaded("m1", "alice", "cat");
  e.clear_id();
  ExpectInvalid(e, "event.id: must not be empty");

  EXPECT_TRUE(DecodeEvent(t::Uploaded("m1", "alice", "cat")).ok());
}

TEST(ParseMediaNameTest, AcceptsOnlyWellFormedNames) {
  EXPECT_EQ(*ParseMediaName("name", "media/abc-1.2_X"), "abc-1.2_X");
  for (const char* bad :
       {"", "media/", "media/..", "media/.", "medias/x", "media/a/b", "media/a b", "x"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseMediaName("name", bad).status())) << bad;
  }
  EXPECT_TRUE(
      absl::IsInvalidArgument(ParseMediaName("name", "media/" + std::string(129, 'a')).status()));
}

TEST(MergeEventTest, TheLifeCycleOfOneMedia) {
  StoredMedia m = Project({t::Uploaded("m1", "alice", "cat")});
  EXPECT_EQ(DerivedState(m), v1::UPLOADED);
  EXPECT_EQ(m.title(), "cat");
  m = Project({t::Uploaded("m1", "alice", "cat"), t::JobRequested("m1", "alice", "360p"),
               t::JobRequested("m1", "alice", "poster"), t::JobProgressed("m1", "360p", 0.5)});
  EXPECT_EQ(DerivedState(m), v1::PROCESSING);
  EXPECT_DOUBLE_EQ(DerivedProgress(m), 0.25);
  EXPECT_EQ(m.source_info().width(), 1280);
  m = Project({t::Uploaded("m1", "alice", "cat"), t::JobRequested("m1", "alice", "360p"),
               t::JobCompleted("m1", "alice", "360p"), t::Ready("m1", "alice")});
  EXPECT_EQ(DerivedState(m), v1::READY);
  EXPECT_DOUBLE_EQ(DerivedProgress(m), 1.0);
  EXPECT_EQ(m.renditions().size(), 2u);  // 360p and the poster
  EXPECT_EQ(m.hls_master_key(), "alice/m1/hls/master.m3u8");
  m = Project({t::Uploaded("m1", "alice", "cat"), t::Failed("m1", "alice", "not a video")});
  EXPECT_EQ(DerivedState(m), v1::FAILED);
  EXPECT_EQ(m.error(), "not a video");
}

TEST(MergeEventTest, ARenditionKeepsWhatReadsRenderAndNothingElse) {
  auto done = t::JobCompleted("m1", "alice", "360p");
  events::v1::TranscodeJobCompleted payload;
  ASSERT_TRUE(done.proto_data().UnpackTo(&payload));
  payload.set_worker("worker-7");
  payload.set_bitrate_bps(1500000);
  payload.mutable_hls_media()->set_key("alice/m1/hls/360p.mp4");
  payload.mutable_hls_playlist()->set_sha256(std::string(64, 'b'));
  payload.mutable_output()->set_sha256(std::string(64, 'c'));
  done.mutable_proto_data()->PackFrom(payload);
  const StoredMedia m = Project({t::Uploaded("m1", "alice", "cat"), done});
  ASSERT_EQ(m.renditions().count("360p"), 1u);
  const events::v1::TranscodeJobCompleted& kept = m.renditions().at("360p");
  // Rendered: the spec, the output object, the duration, the playlist's key.
  EXPECT_EQ(kept.rendition().name(), "360p");
  EXPECT_EQ(kept.rendition().height(), 360);
  EXPECT_EQ(kept.output().key(), "alice/m1/360p.mp4");
  EXPECT_EQ(kept.output().sha256(), std::string(64, 'c'));
  EXPECT_TRUE(kept.has_duration());
  EXPECT_EQ(kept.hls_playlist().key(), "alice/m1/hls/360p.m3u8");
  // Ordering: generation and attempt.
  EXPECT_EQ(kept.generation(), 1);
  EXPECT_EQ(kept.attempt(), 1);
  // Not kept.
  EXPECT_TRUE(kept.job().empty());
  EXPECT_TRUE(kept.media().empty());
  EXPECT_TRUE(kept.worker().empty());
  EXPECT_TRUE(kept.codecs().empty());
  EXPECT_EQ(kept.bitrate_bps(), 0);
  EXPECT_FALSE(kept.has_hls_media());
  EXPECT_TRUE(kept.hls_playlist().sha256().empty());
  // The job itself still counts as done.
  EXPECT_DOUBLE_EQ(m.jobs().at("media/m1/jobs/360p").progress(), 1.0);
}

TEST(MergeEventTest, AnyOrderOfTheSameEventsGivesTheSameRecord) {
  std::vector<io::cloudevents::v1::CloudEvent> events = {
      t::Uploaded("m1", "alice", "cat"),        t::JobRequested("m1", "alice", "360p"),
      t::JobProgressed("m1", "360p", 0.4),      t::JobCompleted("m1", "alice", "360p"),
      t::JobCompleted("m1", "alice", "poster"), t::Ready("m1", "alice"),
      t::JobProgressed("m1", "360p", 0.9),
  };
  const StoredMedia expected = Project(events);
  EXPECT_EQ(DerivedState(expected), v1::READY);
  EXPECT_EQ(ExpectEveryOrderGives(events, expected), 5040);
}

TEST(MergeEventTest, TheNewestGenerationDecidesTheOutcomeInEitherOrder) {
  const auto failed1 = t::Failed("m1", "alice", "ffmpeg crashed", 1);
  const auto ready2 = t::Ready("m1", "alice", 2);
  const auto up = t::Uploaded("m1", "alice", "cat");
  EXPECT_EQ(DerivedState(Project({up, failed1, ready2})), v1::READY);
  EXPECT_EQ(DerivedState(Project({up, ready2, failed1})), v1::READY);
  const auto ready1 = t::Ready("m1", "alice", 1);
  const auto failed2 = t::Failed("m1", "alice", "gone", 2);
  EXPECT_EQ(DerivedState(Project({up, ready1, failed2})), v1::FAILED);
  EXPECT_EQ(DerivedState(Project({up, failed2, ready1})), v1::FAILED);
  // A job's older generation is ignored once a newer one reported.
  StoredMedia m =
      Project({up, t::JobProgressed("m1", "360p", 0.2, 2), t::JobProgressed("m1", "360p", 0.9, 1)});
  EXPECT_DOUBLE_EQ(m.jobs().at("media/m1/jobs/360p").progress(), 0.2);
}

TEST(MergeEventTest, ATombstoneIsFinalAndDuplicatesChangeNothing) {
  StoredMedia m = Project({t::Uploaded("m1", "alice", "cat"), t::Deleted("m1", "alice")});
  EXPECT_TRUE(m.deleted());
  EXPECT_EQ(m.owner(), "alice");
  EXPECT_EQ(m.title(), "");
  auto late = DecodeEvent(t::Ready("m1", "alice"));
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(MergeEvent(*late, &m));
  EXPECT_EQ(DerivedState(m), v1::DELETED);
  // The same fact twice is not a change.
  StoredMedia r = Project({t::Uploaded("m1", "alice", "cat")});
  auto again = DecodeEvent(t::Uploaded("m1", "alice", "cat"));
  EXPECT_FALSE(MergeEvent(*again, &r));
  auto progress = DecodeEvent(t::JobProgressed("m1", "360p", 0.5));
  EXPECT_TRUE(MergeEvent(*progress, &r));
  EXPECT_FALSE(MergeEvent(*progress, &r));
}

TEST(MergeEventTest, UpdatesAreLastWriterWinsPerFieldInAnyOrder) {
  const absl::Time t0 = absl::FromUnixSeconds(1767225600);
  std::vector<io::cloudevents::v1::CloudEvent> events = {
      t::Uploaded("m1", "alice", "cat"),
      t::Updated("m1", "alice", "a cat", t0 + absl::Minutes(1),
                 events::v1::MEDIA_VISIBILITY_PUBLIC),
      t::Updated("m1", "alice", "the cat", t0 + absl::Minutes(2)),
      t::Updated("m1", "alice", "old", t0, events::v1::MEDIA_VISIBILITY_UNLISTED),
      t::Ready("m1", "alice"),
  };
  const StoredMedia expected = Project(events);
  EXPECT_EQ(expected.title(), "the cat");        // the newest title
  EXPECT_EQ(expected.visibility(), v1::PUBLIC);  // the newest visibility
  EXPECT_EQ(ExpectEveryOrderGives(events, expected), 120);
}

TEST(MergeEventTest, AnUpdateThatArrivesBeforeTheUploadKeepsItsTitle) {
  const absl::Time t0 = absl::FromUnixSeconds(1767225600);
  StoredMedia m =
      Project({t::Updated("m1", "alice", "renamed", t0), t::Uploaded("m1", "alice", "cat")});
  EXPECT_EQ(m.title(), "renamed");
  EXPECT_TRUE(m.uploaded());
  // Equal times: the event key breaks the tie, the same way in both orders.
  auto a = t::Updated("m1", "alice", "A", t0 + absl::Seconds(1));
  auto b = t::Updated("m1", "alice", "B", t0 + absl::Seconds(1));
  EXPECT_EQ(Project({a, b}).title(), Project({b, a}).title());
}

TEST(DecodeEventTest, RefusesUpdatesItCannotApply) {
  const absl::Time t0 = absl::FromUnixSeconds(1767225600);
  auto with = [&](auto edit) {
    auto e = t::Updated("m1", "alice", "x", t0);
    events::v1::MediaUpdated p;
    EXPECT_TRUE(broker_client::UnpackPayload(e, &p).ok());
    edit(p);
    e.mutable_proto_data()->PackFrom(p);
    return e;
  };
  ExpectInvalid(with([](events::v1::MediaUpdated& p) { p.clear_paths(); }),
                "event.data.paths: empty");
  ExpectInvalid(with([](events::v1::MediaUpdated& p) { p.add_paths("owner"); }),
                "\"owner\" is not title, description or visibility");
  ExpectInvalid(with([](events::v1::MediaUpdated& p) {
                  p.add_paths("visibility");
                  p.set_visibility(static_cast<events::v1::MediaVisibility>(7));
                }),
                "event.data.visibility: must be PRIVATE, PUBLIC or UNLISTED, got 7");
  ExpectInvalid(with([](events::v1::MediaUpdated& p) { p.clear_update_time(); }),
                "event.data.update_time: missing");
  auto forged = t::Updated("m1", "alice", "x", t0);
  forged.set_source("//pettube/upload");
  ExpectInvalid(forged, "must come from \"//pettube/media-catalog\"");
  EXPECT_TRUE(DecodeEvent(t::Updated("m1", "alice", "x", t0)).ok());
}

TEST(MediaVisibilityTest, EventNumbersAreTheApisNumbers) {
  EXPECT_EQ(static_cast<int>(events::v1::MEDIA_VISIBILITY_PRIVATE), static_cast<int>(v1::PRIVATE));
  EXPECT_EQ(static_cast<int>(events::v1::MEDIA_VISIBILITY_PUBLIC), static_cast<int>(v1::PUBLIC));
  EXPECT_EQ(static_cast<int>(events::v1::MEDIA_VISIBILITY_UNLISTED),
            static_cast<int>(v1::UNLISTED));
}

}  // namespace
}  // namespace pettube::catalog
