#include "services/broker/access_policy.h"

#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

io::cloudevents::v1::CloudEvent Ev(const std::string& type, const std::string& source) {
  io::cloudevents::v1::CloudEvent e;
  e.set_type(type);
  e.set_source(source);
  return e;
}

Access Workload(const std::string& identity, const std::string& client_id) {
  Access a;
  a.identity = identity;
  a.client_id = client_id;
  a.checked = true;
  return a;
}

TEST(AccessPolicyTest, BindsEachWorkloadToItsTypesAndSources) {
  auto p = AccessPolicy::Parse(R"({"workloads": [
      {"client_id": "upload", "types": ["pettube.media.uploaded"],
       "source_prefixes": ["//pettube/upload"]},
      {"client_id": "worker", "types": ["pettube.transcode.job.*"]},
      {"identity": "id-admin-tool", "types": ["*"]}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->NeedsClientIds());
  const Access upload = Workload("id-u", "upload");
  EXPECT_TRUE(p->CheckPublish(upload, Ev("pettube.media.uploaded", "//pettube/upload")).ok());
  const absl::Status wrong_type =
      p->CheckPublish(upload, Ev("pettube.media.ready", "//pettube/upload"));
  EXPECT_EQ(wrong_type.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(wrong_type.message().find("event.type"), std::string::npos) << wrong_type;
  const absl::Status wrong_source =
      p->CheckPublish(upload, Ev("pettube.media.uploaded", "//pettube/media-catalog"));
  EXPECT_NE(wrong_source.message().find("event.source"), std::string::npos) << wrong_source;
  const Access worker = Workload("id-w", "worker");
  EXPECT_TRUE(p->CheckPublish(worker, Ev("pettube.transcode.job.completed", "//x")).ok());
  EXPECT_FALSE(p->CheckPublish(worker, Ev("pettube.transcode.jobs", "//x")).ok());
  EXPECT_TRUE(p->CheckPublish(Workload("id-admin-tool", ""), Ev("any.thing", "//y")).ok());
  // Not in the file: nothing.
  EXPECT_EQ(p->CheckPublish(Workload("id-z", "stranger"), Ev("a", "b")).code(),
            absl::StatusCode::kPermissionDenied);
  // Without credentials nothing is checked.
  EXPECT_TRUE(p->CheckPublish(Access::Unchecked(), Ev("a", "b")).ok());
}

TEST(AccessPolicyTest, GrantsListedSubscriptionsOnly) {
  auto p = AccessPolicy::Parse(R"({"workloads": [
      {"client_id": "worker", "subscriptions": ["subscriptions/transcode-jobs"]}]})");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Grants(Workload("id-w", "worker"), "subscriptions/transcode-jobs"));
  EXPECT_FALSE(p->Grants(Workload("id-w", "worker"), "subscriptions/media-catalog"));
  EXPECT_FALSE(p->Grants(Workload("id-o", "other"), "subscriptions/transcode-jobs"));
}

TEST(AccessPolicyTest, DefaultsPublishAnythingAndShareTheJobQueueWithWorkers) {
  const AccessPolicy p = AccessPolicy::Defaults();
  EXPECT_TRUE(p.CheckPublish(Workload("id", "anyone"), Ev("a", "b")).ok());
  EXPECT_TRUE(p.Grants(Workload("id-w", "transcode-worker"), "subscriptions/transcode-jobs"));
  EXPECT_TRUE(p.Grants(Workload("id-c", "transcode-coordinator"), "subscriptions/transcode-jobs"));
  EXPECT_FALSE(p.Grants(Workload("id-u", "upload"), "subscriptions/transcode-jobs"));
}

TEST(AccessPolicyTest, MalformedFilesNameTheEntryAndField) {
  for (const auto& [json, want] : std::vector<std::pair<std::string, std::string>>{
           {"[]", "not a JSON object"},
           {R"({"workloads": 3})", "\"workloads\" must be a list"},
           {R"({"workloads": [{"types": ["a"]}]})", "workloads[0]: needs exactly one"},
           {R"({"workloads": [{"client_id": "a", "types": "x"}]})", "workloads[0].types"},
           {R"({"workloads": [{"client_id": "a", "typs": []}]})", "unknown field \"typs\""},
           {R"({"workloads": [{"client_id": "a"}, {"client_id": "a"}]})", "listed twice"},
           {R"({"workloads": [{"client_id": "a", "subscriptions": ["q"]}]})",
            "workloads[0].subscriptions"},
       }) {
    auto p = AccessPolicy::Parse(json);
    ASSERT_FALSE(p.ok()) << json;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(want), std::string::npos) << p.status() << " / " << json;
  }
}

}  // namespace
}  // namespace pettube::broker
