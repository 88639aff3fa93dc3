// The catalog core over the in-memory store: exactly-once projection, the
// access rules, paging, updates and deletion, and each bad input of issue 10
// with its precise status.

#include "services/media-catalog/catalog.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "services/media-catalog/in_memory_media_store.h"
#include "services/media-catalog/test_events.h"

namespace pettube::catalog {
namespace {

namespace t = ::pettube::catalog::testing;

auth::Caller Person(const std::string& id) {
  auth::Caller c;
  c.identity = id;
  c.scopes = {"media.read", "media.write"};
  return c;
}

auth::Caller Operator() {
  auth::Caller c;
  c.identity = "ops";
  c.scopes = {"media.read", "media.admin"};
  c.workload = true;
  return c;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Create(&store_, &feed_,
                                   [this](io::cloudevents::v1::CloudEvent e, Catalog::DoneFn done) {
                                     if (!publish_status_.ok()) return done(publish_status_);
                                     published_.push_back(std::move(e));
                                     done(absl::OkStatus());
                                   },
                                   {});
    ASSERT_TRUE(catalog.ok());
    catalog_ = std::move(*catalog);
  }

  void Apply(const io::cloudevents::v1::CloudEvent& e) {
    absl::Status s = catalog_->Apply(e);
    ASSERT_TRUE(s.ok()) << s;
  }

  // Uploads n media of `owner`, the i-th at minute i (so newest is n-1).
  void UploadMany(const std::string& owner, int n, const std::string& prefix = "m") {
    for (int i = 0; i < n; ++i) {
      Apply(t::Uploaded(absl::StrCat(prefix, i), owner, absl::StrCat("clip ", i),
                        absl::FromUnixSeconds(1767225600 + 60 * i)));
    }
  }

  absl::Status Delete(const auth::Caller& caller, const v1::DeleteMediaRequest& req) {
    absl::Status result = absl::InternalError("done not called");
    catalog_->Delete(caller, req, [&](absl::Status s) { result = s; });
    return result;
  }

  std::vector<std::string> ListAll(const auth::Caller& caller, v1::ListMediaRequest req) {
    std::vector<std::string> names;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = catalog_->List(caller, req);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const auto& m : page->media) names.push_back(m.media_id());
      if (page->next_page_token.empty()) break;
      req.set_page_token(page->next_page_token);
    }
    return names;
  }

  InMemoryMediaStore store_;
  ChangeFeed feed_;
  std::unique_ptr<Catalog> catalog_;
  absl::Status publish_status_;
  std::vector<io::cloudevents::v1::CloudEvent> published_;
};

TEST_F(CatalogTest, ADuplicateEventIsAppliedOnce) {
  const auto uploaded = t::Uploaded("m1", "alice", "cat");
  Apply(uploaded);
  const auto progressed = t::JobProgressed("m1", "360p", 0.5);
  Apply(progressed);
  const int writes = store_.writes();
  Apply(uploaded);
  Apply(progressed);
  EXPECT_EQ(store_.writes(), writes);
  auto m = catalog_->Get(Person("alice"), "media/m1");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->version(), 2u);
}

TEST_F(CatalogTest, UnknownTypesAndMalformedPayloadsAreRefusedForTheDeadLetterQueue) {
  auto e = t::Uploaded("m1", "alice", "cat");
  e.set_type("pettube.media.exploded");
  absl::Status s = catalog_->Apply(e);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  e = t::Uploaded("m1", "alice", "cat");
  e.mutable_proto_data()->set_value("\x0a\xff");
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->Apply(e)));
  // The media behind them is not blocked.
  Apply(t::Uploaded("m1", "alice", "cat"));
  EXPECT_TRUE(catalog_->Get(Person("alice"), "media/m1").ok());
}

TEST_F(CatalogTest, AStorageOutageIsRetriableAndTheRetryApplies) {
  store_.set_fail_writes(true);
  const auto e = t::Uploaded("m1", "alice", "cat");
  EXPECT_TRUE(absl::IsUnavailable(catalog_->Apply(e)));
  store_.set_fail_writes(false);
  Apply(e);
  EXPECT_TRUE(catalog_->Get(Person("alice"), "media/m1").ok());
}

TEST_F(CatalogTest, EventsOutOfOrderConvergeAndTheRecordShowsOnceUploaded) {
  Apply(t::JobCompleted("m1", "alice", "360p"));
  Apply(t::Ready("m1", "alice"));
  // Not listed or readable before its upload is known.
  EXPECT_TRUE(absl::IsNotFound(catalog_->Get(Person("alice"), "media/m1").status()));
  Apply(t::Uploaded("m1", "alice", "cat"));
  Apply(t::JobProgressed("m1", "360p", 0.3));  // late progress
  auto m = catalog_->Get(Person("alice"), "media/m1");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(DerivedState(*m), v1::READY);
  EXPECT_DOUBLE_EQ(DerivedProgress(*m), 1.0);
}

TEST_F(CatalogTest, AnotherPersonsPrivateMediaIsNotFoundButPublicAndUnlistedAreReadable) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  const auto bob = Person("bob");
  auto s = catalog_->Get(bob, "media/m1").status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_EQ(s.message(), "name: no media \"media/m1\"");  // same as for a missing id
  EXPECT_EQ(catalog_->Get(bob, "media/nope").status().message(), "name: no media \"media/nope\"");
  EXPECT_TRUE(catalog_->Get(Operator(), "media/m1").ok());

  v1::UpdateMediaRequest up;
  up.mutable_media()->set_name("media/m1");
  up.mutable_media()->set_visibility(v1::UNLISTED);
  up.mutable_update_mask()->add_paths("visibility");
  ASSERT_TRUE(catalog_->Update(Person("alice"), up).ok());
  EXPECT_TRUE(catalog_->Get(bob, "media/m1").ok());
  EXPECT_TRUE(ListAll(bob,
                      [] {
                        v1::ListMediaRequest r;
                        r.set_owner("public");
                        return r;
                      }())
                  .empty());  // unlisted is never listed
  up.mutable_media()->set_visibility(v1::PUBLIC);
  ASSERT_TRUE(catalog_->Update(Person("alice"), up).ok());
  v1::ListMediaRequest pub;
  pub.set_owner("public");
  EXPECT_EQ(ListAll(bob, pub), std::vector<std::string>{"m1"});
  // Bob can see it but not change or delete it.
  const size_t published = published_.size();  // alice's two updates
  EXPECT_EQ(published, 2u);
  up.mutable_media()->set_title("mine now");
  up.mutable_update_mask()->add_paths("title");
  EXPECT_TRUE(absl::IsPermissionDenied(catalog_->Update(bob, up).status()));
  v1::DeleteMediaRequest del;
  del.set_name("media/m1");
  EXPECT_TRUE(absl::IsPermissionDenied(Delete(bob, del)));
  EXPECT_EQ(published_.size(), published);
}

TEST_F(CatalogTest, MalformedNamesAreInvalidArgumentNamingTheField) {
  for (const char* name : {"", "m1", "media/", "media/a/b", "media/..", "media/\xff"}) {
    auto s = catalog_->Get(Person("alice"), name).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << name << ": " << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), "name: ")) << s;
  }
}

TEST_F(CatalogTest, PagesAreNewestFirstAndNeverSkipOrRepeatWhileNewMediaArrive) {
  UploadMany("alice", 7);
  UploadMany("bob", 3, "b");
  v1::ListMediaRequest req;
  req.set_page_size(3);
  auto first = catalog_->List(Person("alice"), req);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->media.size(), 3u);
  EXPECT_EQ(first->media[0].media_id(), "m6");
  EXPECT_EQ(first->media[2].media_id(), "m4");
  // New media arrive between pages.
  Apply(t::Uploaded("new1", "alice", "new", absl::FromUnixSeconds(1767225600 + 3600)));
  req.set_page_token(first->next_page_token);
  std::vector<std::string> rest = ListAll(Person("alice"), req);
  EXPECT_EQ(rest, (std::vector<std::string>{"m3", "m2", "m1", "m0"}));
  // And the new one is first on a fresh listing.
  req.clear_page_token();
  EXPECT_EQ(ListAll(Person("alice"), req).front(), "new1");
}

TEST_F(CatalogTest, TheStateFilterListsOnlyThatState) {
  UploadMany("alice", 4);
  Apply(t::Ready("m1", "alice"));
  Apply(t::Ready("m3", "alice"));
  Apply(t::JobRequested("m2", "alice", "360p"));
  v1::ListMediaRequest req;
  req.set_state(v1::READY);
  req.set_page_size(1);
  EXPECT_EQ(ListAll(Person("alice"), req), (std::vector<std::string>{"m3", "m1"}));
  req.set_state(v1::PROCESSING);
  EXPECT_EQ(ListAll(Person("alice"), req), (std::vector<std::string>{"m2"}));
}

TEST_F(CatalogTest, BadPageSizesOwnersAndStatesAreInvalidArgument) {
  v1::ListMediaRequest req;
  req.set_page_size(-1);
  auto s = catalog_->List(Person("alice"), req).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "page_size: must be 0 to 500, got -1");
  req.set_page_size(501);
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->List(Person("alice"), req).status()));
  req.set_page_size(500);
  EXPECT_TRUE(catalog_->List(Person("alice"), req).ok());
  req.set_state(v1::DELETED);
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->List(Person("alice"), req).status()));
  req.set_state(static_cast<v1::MediaState>(42));
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->List(Person("alice"), req).status()));
  req.set_state(v1::MEDIA_STATE_UNSPECIFIED);
  req.set_owner("bob");
  EXPECT_TRUE(absl::IsPermissionDenied(catalog_->List(Person("alice"), req).status()));
  EXPECT_TRUE(catalog_->List(Operator(), req).ok());
  req.set_owner("all");
  EXPECT_TRUE(absl::IsPermissionDenied(catalog_->List(Person("alice"), req).status()));
  req.set_owner("no/slash");
  EXPECT_TRUE(absl::IsInvalidArgument(catalog_->List(Operator(), req).status()));
}

TEST_F(CatalogTest, TamperedForgedOrMovedPageTokensAreInvalidArgument) {
  UploadMany("alice", 5);
  UploadMany("bob", 5, "b");
  v1::ListMediaRequest req;
  req.set_page_size(2);
  auto first = catalog_->List(Person("alice"), req);
  ASSERT_TRUE(first.ok());
  const std::string token = first->next_page_token;
  ASSERT_FALSE(token.empty());
  auto expect_invalid = [&](const auth::Caller& caller, v1::ListMediaRequest r,
                            absl::string_view words) {
    auto s = catalog_->List(caller, r).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(s.message().find(words), absl::string_view::npos) << s.message();
  };
  v1::ListMediaRequest r = req;
  r.set_page_token("garbage");
  expect_invalid(Person("alice"), r, "page_token: malformed");
  // Flip one character of the payload: the signature no longer matches.
  std::string tampered = token;
  tampered[3] = tampered[3] == 'A' ? 'B' : 'A';
  r.set_page_token(tampered);
  expect_invalid(Person("alice"), r, "page_token: signature does not match");
  // A forged cursor signed with another key.
  storage::PageCursor cursor;
  cursor.set_caller("alice");
  cursor.set_listing("bob");
  r.set_page_token(PageTokenCodec(std::string(32, 'x')).Encode(cursor));
  expect_invalid(Person("alice"), r, "page_token: signature does not match");
  // A genuine token in another caller's hands, or with another filter.
  r.set_page_token(token);
  expect_invalid(Person("bob"), r, "page_token: was issued for another");
  r.set_state(v1::READY);
  expect_invalid(Person("alice"), r, "page_token: was issued for another");
  r.set_page_token(std::string(5000, 'a'));
  expect_invalid(Person("alice"), r, "page_token: longer");
}

TEST_F(CatalogTest, UpdateAppliesTheMaskAndRefusesStaleEtags) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  auto m = catalog_->Get(Person("alice"), "media/m1");
  v1::UpdateMediaRequest up;
  up.mutable_media()->set_name("media/m1");
  up.mutable_media()->set_title("a cat");
  up.mutable_media()->set_description("ignored: not in the mask");
  up.mutable_media()->set_etag(Etag(*m));
  up.mutable_update_mask()->add_paths("title");
  auto updated = catalog_->Update(Person("alice"), up);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->title(), "a cat");
  EXPECT_EQ(updated->description(), "");
  EXPECT_NE(Etag(*updated), Etag(*m));
  // The old etag is stale now.
  auto s = catalog_->Update(Person("alice"), up).status();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_NE(s.message().find("etag: \"v1\" is stale"), absl::string_view::npos) << s.message();
  // Projection writes change the etag too.
  up.mutable_media()->set_etag(Etag(*updated));
  Apply(t::JobProgressed("m1", "360p", 0.1));
  EXPECT_TRUE(absl::IsAborted(catalog_->Update(Person("alice"), up).status()));
  // Without an etag the last writer wins.
  up.mutable_media()->clear_etag();
  EXPECT_TRUE(catalog_->Update(Person("alice"), up).ok());
}

TEST_F(CatalogTest, BadMasksTitlesDescriptionsAndVisibilitiesAreInvalidArgument) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  auto expect_invalid = [&](v1::UpdateMediaRequest up, absl::string_view words) {
    up.mutable_media()->set_name("media/m1");
    auto s = catalog_->Update(Person("alice"), up).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_NE(s.message().find(words), absl::string_view::npos) << s.message();
  };
  v1::UpdateMediaRequest up;
  expect_invalid(up, "update_mask: required");
  up.mutable_update_mask()->add_paths("owner");
  expect_invalid(up, "update_mask.paths: \"owner\" is not updatable");
  up.mutable_update_mask()->Clear();
  up.mutable_update_mask()->add_paths("title");
  up.mutable_media()->set_title(std::string(201, 'x'));
  expect_invalid(up, "media.title: at most 200 characters");
  up.mutable_media()->set_title(std::string(200, 'x'));
  up.mutable_media()->set_name("media/m1");
  EXPECT_TRUE(catalog_->Update(Person("alice"), up).ok());
  // 200 characters of 2 bytes each are fine: the limit counts characters.
  std::string umlauts;
  for (int i = 0; i < 200; ++i) umlauts += "\xc3\xa4";
  up.mutable_media()->set_title(umlauts);
  EXPECT_TRUE(catalog_->Update(Person("alice"), up).ok());
  up.mutable_media()->set_title("bad \xc3\x28 utf8");
  expect_invalid(up, "media.title: not valid UTF-8");
  up.mutable_media()->set_title("overlong \xc0\xaf");
  expect_invalid(up, "media.title: not valid UTF-8");
  up.mutable_update_mask()->Clear();
  up.mutable_update_mask()->add_paths("description");
  up.mutable_media()->set_description(std::string(5001, 'd'));
  expect_invalid(up, "media.description: at most 5000 characters");
  up.mutable_update_mask()->Clear();
  up.mutable_update_mask()->add_paths("visibility");
  up.mutable_media()->set_visibility(v1::VISIBILITY_UNSPECIFIED);
  expect_invalid(up, "media.visibility: must be PRIVATE, PUBLIC or UNLISTED");
}

TEST_F(CatalogTest, AnUpdateIsAnEventThatWaitsInTheOutboxUntilTheBrokerHasIt) {
  const auto upload = t::Uploaded("m1", "alice", "cat");
  Apply(upload);
  v1::UpdateMediaRequest up;
  up.mutable_media()->set_name("media/m1");
  up.mutable_media()->set_title("a cat");
  up.mutable_media()->set_visibility(v1::PUBLIC);
  up.mutable_update_mask()->add_paths("title");
  up.mutable_update_mask()->add_paths("visibility");
  publish_status_ = absl::UnavailableError("broker down");
  auto updated = catalog_->Update(Person("alice"), up);
  ASSERT_TRUE(updated.ok()) << updated.status();  // the edit does not wait for the broker
  EXPECT_EQ(updated->title(), "a cat");
  ASSERT_EQ(store_.Outbox()->size(), 1u);
  EXPECT_TRUE(published_.empty());
  // At the next start the outbox goes out, and leaves once acknowledged.
  publish_status_ = absl::OkStatus();
  ASSERT_TRUE(catalog_->PublishOutbox().ok());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].type(), "pettube.media.updated");
  EXPECT_EQ(published_[0].source(), "//pettube/media-catalog");
  EXPECT_TRUE(store_.Outbox()->empty());
  // The broker delivers it back: already applied.
  const int writes = store_.writes();
  Apply(published_[0]);
  EXPECT_EQ(store_.writes(), writes);
  // A second update while the broker is up leaves nothing behind.
  up.mutable_media()->set_title("the cat");
  up.mutable_update_mask()->clear_paths();
  up.mutable_update_mask()->add_paths("title");
  ASSERT_TRUE(catalog_->Update(Person("alice"), up).ok());
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_TRUE(store_.Outbox()->empty());
  // A rebuild from the broker's events, in any order, keeps the edits.
  InMemoryMediaStore rebuilt_store;
  ChangeFeed rebuilt_feed;
  auto rebuilt = Catalog::Create(
      &rebuilt_store, &rebuilt_feed,
      [](io::cloudevents::v1::CloudEvent, Catalog::DoneFn done) { done(absl::OkStatus()); }, {});
  ASSERT_TRUE(rebuilt.ok());
  for (const io::cloudevents::v1::CloudEvent* e :
       std::vector<const io::cloudevents::v1::CloudEvent*>{&published_[1], &upload,
                                                           &published_[0]}) {
    ASSERT_TRUE((*rebuilt)->Apply(*e).ok());
  }
  auto again = (*rebuilt)->Get(Person("alice"), "media/m1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->title(), "the cat");
  EXPECT_EQ(again->visibility(), v1::PUBLIC);
  EXPECT_EQ(again->title_stamp().micros(),
            catalog_->Get(Person("alice"), "media/m1")->title_stamp().micros());
}

TEST_F(CatalogTest, DeletePublishesTheEventAndRemovesTheRecordOnce) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  Apply(t::Uploaded("m2", "alice", "dog"));
  v1::DeleteMediaRequest del;
  del.set_name("media/m1");
  del.set_etag("v7");
  EXPECT_TRUE(absl::IsAborted(Delete(Person("alice"), del)));
  EXPECT_TRUE(published_.empty());
  del.clear_etag();
  publish_status_ = absl::UnavailableError("broker down");
  EXPECT_TRUE(absl::IsUnavailable(Delete(Person("alice"), del)));
  EXPECT_TRUE(catalog_->Get(Person("alice"), "media/m1").ok());  // nothing changed
  publish_status_ = absl::OkStatus();
  ASSERT_TRUE(Delete(Person("alice"), del).ok());
  ASSERT_EQ(published_.size(), 1u);
  EXPECT_EQ(published_[0].type(), "pettube.media.deleted");
  EXPECT_EQ(published_[0].source(), "//pettube/media-catalog");
  EXPECT_TRUE(absl::IsNotFound(catalog_->Get(Person("alice"), "media/m1").status()));
  // The broker delivers our own event back: already applied.
  const int writes = store_.writes();
  Apply(published_[0]);
  EXPECT_EQ(store_.writes(), writes);
  // A late event does not bring it back.
  Apply(t::Ready("m1", "alice"));
  EXPECT_TRUE(absl::IsNotFound(catalog_->Get(Person("alice"), "media/m1").status()));
  v1::ListMediaRequest req;
  EXPECT_EQ(ListAll(Person("alice"), req), std::vector<std::string>{"m2"});
  EXPECT_TRUE(absl::IsNotFound(Delete(Person("alice"), del)));
}

TEST_F(CatalogTest, EveryCommittedChangeReachesItsWatchers) {
  std::vector<std::string> by_media, by_owner;
  ChangeFeed::Watch media_watch;
  media_watch.media_id = "m1";
  media_watch.on_change = [&](const StoredMedia& m) {
    by_media.push_back(absl::StrCat(m.media_id(), "@", m.version()));
  };
  feed_.Subscribe(media_watch);
  ChangeFeed::Watch owner_watch;
  owner_watch.owner = "alice";
  owner_watch.on_change = [&](const StoredMedia& m) {
    by_owner.push_back(absl::StrCat(m.media_id(), "@", m.version()));
  };
  feed_.Subscribe(owner_watch);
  Apply(t::Uploaded("m1", "alice", "cat"));
  Apply(t::Uploaded("m2", "alice", "dog"));
  Apply(t::Uploaded("b1", "bob", "bird"));
  const auto dup = t::JobProgressed("m1", "360p", 0.5);
  Apply(dup);
  Apply(dup);
  EXPECT_EQ(by_media, (std::vector<std::string>{"m1@1", "m1@2"}));
  EXPECT_EQ(by_owner, (std::vector<std::string>{"m1@1", "m2@1", "m1@2"}));
}

TEST_F(CatalogTest, BackupsNeedTheAdminScope) {
  auto s = catalog_->Backup(Person("alice"), "/tmp/x").status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  // The in-memory store cannot checkpoint; the RocksDB one is tested in
  // media_store_test and over the binary.
  EXPECT_TRUE(absl::IsUnimplemented(catalog_->Backup(Operator(), "/tmp/x").status()));
}

TEST(CheckTextTest, CountsCodePointsAndRejectsBrokenUtf8) {
  EXPECT_TRUE(CheckText("f", "", 0).ok());
  EXPECT_TRUE(CheckText("f", "\xf0\x9f\x90\xb1", 1).ok());  // one cat emoji
  EXPECT_FALSE(CheckText("f", "\xf0\x9f\x90", 5).ok());     // truncated
  EXPECT_FALSE(CheckText("f", "\xed\xa0\x80", 5).ok());     // surrogate
  EXPECT_FALSE(CheckText("f", "\xff", 5).ok());
  EXPECT_FALSE(CheckText("f", "ab", 1).ok());
}

}  // namespace
}  // namespace pettube::catalog
