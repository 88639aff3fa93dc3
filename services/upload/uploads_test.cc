#include "services/upload/uploads.h"

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/testing/child_process.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/upload/fs_blob_store.h"
#include "services/upload/rocksdb_upload_store.h"
#include "services/upload/sha256_state.h"

namespace pettube::upload {
namespace {

using v1::CreateUploadRequest;
using v1::WriteRequest;

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.identity = id;
  c.scopes = {"media.upload", "media.read"};
  return c;
}

auth::Caller Worker() {
  auth::Caller c;
  c.identity = "w0rker";
  c.scopes = {"objects.write", "objects.read"};
  c.workload = true;
  return c;
}

// A file the sniffer takes for an MP4, `size` bytes long.
std::string FakeMp4(size_t size) {
  std::string data(size, '\0');
  const std::string head("\0\0\0\x20" "ftypisom", 12);
  data.replace(0, head.size(), head);
  for (size_t i = head.size(); i < size; ++i) data[i] = static_cast<char>(i * 31 % 251);
  return data;
}

std::string Sha(absl::string_view data) {
  Sha256State s;
  s.Update(data);
  return s.HexDigest();
}

WriteRequest Chunk(int64_t offset, absl::string_view data, bool finish = false,
                   const std::string& sha = "") {
  WriteRequest r;
  r.set_write_offset(offset);
  r.set_data(std::string(data));
  r.set_finish_write(finish);
  r.set_sha256(sha);
  return r;
}

class UploadsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("uploads");
    Reopen();
  }

  // A fresh Uploads over the same directories: a restart.
  void Reopen(Uploads::Options options = {}) {
    uploads_.reset();
    store_.reset();
    blobs_.reset();
    auto store = RocksDbUploadStore::Open(dir_ + "/db");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto blobs = FsBlobStore::Open(dir_ + "/blobs");
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = std::move(*blobs);
    options.run_expiry_timer = options.on_expired != nullptr;
    if (!options.on_expired) options.now = [this] { return now_; };
    options.checkpoint_bytes = 1000;
    options.writer_handoff_wait = absl::Milliseconds(20);
    if (options.quota_bytes == Uploads::Options().quota_bytes) options.quota_bytes = 100000;
    uploads_ = std::make_unique<Uploads>(store_.get(), blobs_.get(), options,
                                         [this](const OutboxEntry& e) { events_.push_back(e); });
    ASSERT_TRUE(uploads_->Recover().ok());
  }

  v1::UploadSession Create(const auth::Caller& caller, int64_t total = 0,
                           const std::string& title = "My cat") {
    CreateUploadRequest req;
    req.set_title(title);
    req.set_total_size(total);
    auto session = uploads_->Create(caller, req);
    EXPECT_TRUE(session.ok()) << session.status();
    return session.ok() ? *session : v1::UploadSession();
  }

  // Writes `data` from `offset` in chunks of `chunk` bytes, finishing when asked.
  absl::Status WriteAll(const auth::Caller& caller, const std::string& name,
                        absl::string_view data, int64_t offset, size_t chunk, bool finish,
                        const std::string& sha = "") {
    auto writer = uploads_->BeginWrite(caller, name);
    if (!writer.ok()) return writer.status();
    while (!data.empty() || finish) {
      const absl::string_view part = data.substr(0, chunk);
      data.remove_prefix(part.size());
      const bool last = finish && data.empty();
      if (auto s = (*writer)->Write(Chunk(offset, part, last, last ? sha : "")); !s.ok()) {
        return s;
      }
      offset += part.size();
      if (last) break;
    }
    return absl::OkStatus();
  }

  std::string dir_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::unique_ptr<RocksDbUploadStore> store_;
  std::unique_ptr<FsBlobStore> blobs_;
  std::unique_ptr<Uploads> uploads_;
  std::vector<OutboxEntry> events_;
};

TEST_F(UploadsTest, ChunkedUploadCommitsWithItsEventAndObject) {
  const std::string data = FakeMp4(5000);
  v1::UploadSession session = Create(Person("alice"), data.size());
  EXPECT_EQ(session.state(), v1::ACTIVE);
  EXPECT_EQ(session.bucket(), "originals");
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data, 0, 700, true, Sha(data)).ok());

  auto done = uploads_->Query(Person("alice"), session.name());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::COMMITTED);
  EXPECT_EQ(done->committed().sha256(), Sha(data));
  EXPECT_EQ(done->committed().size_bytes(), 5000);
  EXPECT_FALSE(done->event_published());
  const std::string media_id = session.media().substr(6);
  EXPECT_EQ(done->committed().key(), "alice/" + media_id + "/source");

  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].event.type(), "pettube.media.uploaded");
  EXPECT_EQ(events_[0].event.id(), session.media());
  events::v1::MediaUploaded uploaded;
  ASSERT_TRUE(broker_client::UnpackPayload(events_[0].event, &uploaded).ok());
  EXPECT_EQ(uploaded.owner(), "alice");
  EXPECT_EQ(uploaded.title(), "My cat");
  EXPECT_EQ(uploaded.source().sha256(), Sha(data));
  EXPECT_EQ(uploaded.source().content_type(), "video/mp4");

  auto object = uploads_->FindObject("originals", done->committed().key());
  ASSERT_TRUE(object.ok());
  auto reader = blobs_->Open("originals", done->committed().key());
  std::string stored;
  ASSERT_TRUE((*reader)->ReadAt(0, 10000, &stored).ok());
  EXPECT_EQ(stored, data);

  // The broker acked: the outbox is empty and QueryUpload says so.
  ASSERT_TRUE(store_->MarkPublished(events_[0].upload_id).ok());
  EXPECT_TRUE(uploads_->Query(Person("alice"), session.name())->event_published());
  EXPECT_TRUE(store_->ListOutbox()->empty());
}

TEST_F(UploadsTest, AResumedUploadContinuesFromTheCommittedOffsetAfterARestart) {
  const std::string data = FakeMp4(4500);
  v1::UploadSession session = Create(Person("alice"), data.size());
  // 2500 bytes arrive; checkpoints every 1000 bytes record most, and the
  // stream's end records the rest.
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data.substr(0, 2500), 0, 625, false).ok());
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->committed_size(), 2500);
  Reopen();
  const int64_t resume = uploads_->Query(Person("alice"), session.name())->committed_size();
  ASSERT_EQ(resume, 2500);
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data.substr(resume), resume, 800, true,
                       Sha(data))
                  .ok());
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->committed().sha256(), Sha(data));
}

TEST_F(UploadsTest, OffsetsMustFollowTheCurrentSizeExactly) {
  const std::string data = FakeMp4(3000);
  v1::UploadSession session = Create(Person("alice"), data.size());
  auto writer = uploads_->BeginWrite(Person("alice"), session.name());
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Write(Chunk(-1, "x")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*writer)->Write(Chunk(10, data.substr(0, 600))).code(),
            absl::StatusCode::kOutOfRange);
  ASSERT_TRUE((*writer)->Write(Chunk(0, data.substr(0, 600))).ok());
  absl::Status overlap = (*writer)->Write(Chunk(500, data.substr(500, 600)));
  EXPECT_EQ(overlap.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(overlap.message().find("current size 600"), std::string::npos) << overlap;
  EXPECT_EQ((*writer)->Write(Chunk(600, std::string(2500, 'x'))).code(),
            absl::StatusCode::kOutOfRange)
      << "past the declared total_size";
  EXPECT_EQ((*writer)->Write(Chunk(600, std::string(kMaxChunkBytes + 1, 'x'))).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(UploadsTest, OneWriteStreamAtATime) {
  v1::UploadSession session = Create(Person("alice"));
  auto first = uploads_->BeginWrite(Person("alice"), session.name());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(uploads_->BeginWrite(Person("alice"), session.name()).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(uploads_->Abort(Person("alice"), session.name()).code(), absl::StatusCode::kAborted);
  first->reset();
  EXPECT_TRUE(uploads_->BeginWrite(Person("alice"), session.name()).ok());
}

TEST_F(UploadsTest, ChecksumAndSizeMismatchesAreDataLoss) {
  const std::string data = FakeMp4(2000);
  v1::UploadSession wrong_sha = Create(Person("alice"), data.size());
  absl::Status s = WriteAll(Person("alice"), wrong_sha.name(), data, 0, 2000, true, Sha("other"));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(uploads_->Query(Person("alice"), wrong_sha.name())->state(), v1::ABORTED);
  EXPECT_EQ(uploads_->FindObject("originals", wrong_sha.key()).status().code(),
            absl::StatusCode::kNotFound);

  v1::UploadSession short_file = Create(Person("alice"), data.size() + 10);
  s = WriteAll(Person("alice"), short_file.name(), data, 0, 2000, true, Sha(data));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_EQ(uploads_->Query(Person("alice"), short_file.name())->state(), v1::ACTIVE);
  EXPECT_TRUE(events_.empty());

  v1::UploadSession no_sha = Create(Person("alice"));
  EXPECT_EQ(WriteAll(Person("alice"), no_sha.name(), data, 0, 2000, true, "").code(),
            absl::StatusCode::kInvalidArgument);
  // The bytes stay: finishing again with the checksum commits them.
  EXPECT_TRUE(WriteAll(Person("alice"), no_sha.name(), "", 2000, 10, true, Sha(data)).ok());
  v1::UploadSession empty = Create(Person("alice"));
  EXPECT_EQ(WriteAll(Person("alice"), empty.name(), "", 0, 10, true, Sha("")).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(UploadsTest, ANonVideoIsRefusedBeforeAnyByteIsStored) {
  v1::UploadSession session = Create(Person("alice"));
  std::string pdf = "%PDF-1.7\n" + std::string(1000, 'x');
  absl::Status s = WriteAll(Person("alice"), session.name(), pdf, 0, 1000, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not a video"), std::string::npos) << s;
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->committed_size(), 0);
  // A first chunk too short to check is refused with what is needed.
  s = WriteAll(Person("alice"), session.name(), FakeMp4(100), 0, 100, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("first 512 bytes"), std::string::npos) << s;
}

TEST_F(UploadsTest, QuotaAndObjectLimitsAreResourceExhausted) {
  Uploads::Options options;
  options.quota_bytes = 3000;
  options.max_object_bytes = 2500;
  Reopen(options);
  CreateUploadRequest big;
  big.set_title("big");
  big.set_total_size(2600);
  EXPECT_EQ(uploads_->Create(Person("alice"), big).status().code(),
            absl::StatusCode::kResourceExhausted);
  const std::string data = FakeMp4(2000);
  v1::UploadSession first = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), first.name(), data, 0, 1000, true, Sha(data)).ok());
  v1::UploadSession second = Create(Person("alice"));
  absl::Status s = WriteAll(Person("alice"), second.name(), data, 0, 1000, true, Sha(data));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("quota"), std::string::npos);
  // Bob's quota is his own.
  v1::UploadSession bobs = Create(Person("bob"));
  EXPECT_TRUE(WriteAll(Person("bob"), bobs.name(), data, 0, 1000, true, Sha(data)).ok());
  // Deleting alice's media frees her quota.
  ASSERT_TRUE(uploads_->DeleteMedia("alice", first.media()).ok());
  v1::UploadSession third = Create(Person("alice"));
  EXPECT_TRUE(WriteAll(Person("alice"), third.name(), data, 0, 1000, true, Sha(data)).ok());
}

TEST_F(UploadsTest, OtherPeoplesUploadsDoNotExistForThem) {
  v1::UploadSession session = Create(Person("alice"));
  EXPECT_EQ(uploads_->Query(Person("bob"), session.name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(uploads_->BeginWrite(Person("bob"), session.name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(uploads_->Abort(Person("bob"), session.name()).code(), absl::StatusCode::kNotFound);
  for (const char* name : {"uploads/../x", "x", "uploads/", "uploads/a%2fb", "uploads/a\\b"}) {
    EXPECT_EQ(uploads_->Query(Person("alice"), name).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
}

TEST_F(UploadsTest, CreateRefusesBadRequestsPrecisely) {
  CreateUploadRequest req;
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().message(), "title: must not be empty");
  req.set_title(std::string(201, 'x'));
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_title("\xff\xfe");
  EXPECT_NE(uploads_->Create(Person("a"), req).status().message().find("UTF-8"),
            std::string::npos);
  req.set_title("ok");
  req.set_sha256("ABC");
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(), absl::StatusCode::kInvalidArgument);
  req.clear_sha256();
  req.set_content_type("video/mp4\r\nX-Evil: 1");
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(), absl::StatusCode::kInvalidArgument);
  req.clear_content_type();
  req.set_total_size(-5);
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_total_size(0);
  req.set_bucket("secrets");
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_bucket("renditions");
  EXPECT_EQ(uploads_->Create(Person("a"), req).status().code(),
            absl::StatusCode::kPermissionDenied);
  auth::Caller no_scope = Person("a");
  no_scope.scopes = {"media.read"};
  req.clear_bucket();
  EXPECT_EQ(uploads_->Create(no_scope, req).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(UploadsTest, WorkersWriteRenditionsOnlyUnderExistingMedia) {
  const std::string data = FakeMp4(1500);
  v1::UploadSession original = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), original.name(), data, 0, 1500, true, Sha(data)).ok());
  const std::string media_id = original.media().substr(6);

  CreateUploadRequest req;
  req.set_bucket("renditions");
  req.set_content_type("video/mp4");
  req.set_key("alice/" + media_id + "/720p.mp4");
  auto rendition = uploads_->Create(Worker(), req);
  ASSERT_TRUE(rendition.ok()) << rendition.status();
  // Renditions are not sniffed (playlists, posters) and emit no event.
  const std::string playlist = "#EXTM3U\n";
  ASSERT_TRUE(WriteAll(Worker(), rendition->name(), playlist, 0, 100, true, Sha(playlist)).ok());
  EXPECT_EQ(events_.size(), 1u);
  EXPECT_EQ(uploads_->FindObject("renditions", req.key())->info().size_bytes(),
            static_cast<int64_t>(playlist.size()));

  for (const std::string& key : std::vector<std::string>{
           "alice/nosuchmedia/720p.mp4", "alice/" + media_id, "alice/" + media_id + "/../x"}) {
    req.set_key(key);
    EXPECT_FALSE(uploads_->Create(Worker(), req).ok()) << key;
  }
  // After deletion nothing new lands under the media, also mid-upload.
  req.set_key("alice/" + media_id + "/480p.mp4");
  auto late = uploads_->Create(Worker(), req);
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE(uploads_->DeleteMedia("alice", original.media()).ok());
  EXPECT_EQ(WriteAll(Worker(), late->name(), playlist, 0, 100, true, Sha(playlist)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(uploads_->Create(Worker(), req).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(blobs_->List("renditions", "alice/" + media_id + "/")->empty());
  EXPECT_TRUE(blobs_->List("originals", "alice/" + media_id + "/")->empty());
  EXPECT_TRUE(uploads_->DeleteMedia("alice", original.media()).ok()) << "idempotent";
}

TEST_F(UploadsTest, ACommitInterruptedBeforeTheMoveIsFinishedAtRestart) {
  const std::string data = FakeMp4(1200);
  v1::UploadSession session = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data, 0, 1200, true, Sha(data)).ok());
  // Simulate the crash window: recorded COMMITTED, bytes still staged.
  const std::string key = uploads_->Query(Person("alice"), session.name())->committed().key();
  const std::string id = session.name().substr(8);
  uploads_.reset();
  {
    auto reader = blobs_->Open("originals", key);
    std::string bytes;
    ASSERT_TRUE((*reader)->ReadAt(0, 5000, &bytes).ok());
    ASSERT_TRUE(blobs_->Delete("originals", key).ok());
    auto staged = blobs_->OpenStaged(id, 0);
    ASSERT_TRUE((*staged)->Append(bytes).ok());
  }
  events_.clear();
  Reopen();
  EXPECT_TRUE(*blobs_->Exists("originals", key));
  // The outbox entry was never acked, so its event is handed on again.
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].event.id(), session.media());
}

TEST_F(UploadsTest, StaleUploadsExpireAndTheirBytesAreRemoved) {
  v1::UploadSession session = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), FakeMp4(1500), 0, 1500, false).ok());
  EXPECT_EQ(store_->Usage("alice").value(), 1500);
  // A restart finds the session again (the active index) and its deadline.
  Reopen();
  now_ += absl::Hours(23);
  uploads_->ExpireDue();
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->state(), v1::ACTIVE);
  now_ += absl::Hours(2);
  uploads_->ExpireDue();
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->state(), v1::ABORTED);
  EXPECT_TRUE(blobs_->ListStaged()->empty());
  EXPECT_EQ(store_->Usage("alice").value(), 0);
  EXPECT_EQ(uploads_->BeginWrite(Person("alice"), session.name()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(UploadsTest, TheExpiryTimerFiresAtTheEarliestDeadline) {
  absl::Notification expired;
  std::string expired_id;
  Uploads::Options options;
  options.upload_ttl = absl::Milliseconds(50);
  options.on_expired = [&](const std::string& id) {
    expired_id = id;
    expired.Notify();
  };
  Reopen(options);
  v1::UploadSession session = Create(Person("alice"));
  ASSERT_TRUE(expired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ("uploads/" + expired_id, session.name());
  EXPECT_EQ(uploads_->Query(Person("alice"), session.name())->state(), v1::ABORTED);
}

TEST_F(UploadsTest, AbortRemovesTheBytesAndCommittedUploadsCannotBeAborted) {
  const std::string data = FakeMp4(1500);
  v1::UploadSession session = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data, 0, 1500, false).ok());
  ASSERT_TRUE(uploads_->Abort(Person("alice"), session.name()).ok());
  EXPECT_TRUE(uploads_->Abort(Person("alice"), session.name()).ok());
  EXPECT_EQ(WriteAll(Person("alice"), session.name(), data, 1500, 100, false).code(),
            absl::StatusCode::kFailedPrecondition);
  v1::UploadSession done = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), done.name(), data, 0, 1500, true, Sha(data)).ok());
  EXPECT_EQ(uploads_->Abort(Person("alice"), done.name()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(WriteAll(Person("alice"), done.name(), "x", 1500, 1, false).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(UploadsTest, StatIsForTheOwnerAndObjectReaders) {
  const std::string data = FakeMp4(1500);
  v1::UploadSession session = Create(Person("alice"));
  ASSERT_TRUE(WriteAll(Person("alice"), session.name(), data, 0, 1500, true, Sha(data)).ok());
  const std::string key = uploads_->Query(Person("alice"), session.name())->committed().key();
  EXPECT_EQ(uploads_->Stat(Person("alice"), "originals", key)->sha256(), Sha(data));
  EXPECT_EQ(uploads_->Stat(Worker(), "originals", key)->size_bytes(), 1500);
  EXPECT_EQ(uploads_->Stat(Person("bob"), "originals", key).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pettube::upload
