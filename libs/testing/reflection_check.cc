#include "libs/testing/reflection_check.h"

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace pettube::testing {

using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

absl::StatusOr<std::vector<std::string>> ResolveServicesOverReflection(const std::string& address,
                                                                       absl::Duration timeout) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto stream = stub->ServerReflectionInfo(&ctx);

  // One request, one response: the stream answers in order.
  auto ask = [&](const ServerReflectionRequest& req,
                 ServerReflectionResponse* resp) -> absl::Status {
    if (!stream->Write(req) || !stream->Read(resp)) {
      return absl::UnavailableError(absl::StrCat(address, ": reflection stream broke"));
    }
    if (resp->has_error_response()) {
      return absl::NotFoundError(resp->error_response().error_message());
    }
    return absl::OkStatus();
  };
  std::map<std::string, google::protobuf::FileDescriptorProto> files;
  auto take_files = [&](const ServerReflectionResponse& resp) -> absl::Status {
    for (const std::string& bytes : resp.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      if (!file.ParseFromString(bytes)) return absl::DataLossError("unparseable descriptor");
      files[file.name()] = file;
    }
    return absl::OkStatus();
  };

  ServerReflectionRequest list;
  list.set_list_services("");
  ServerReflectionResponse listed;
  if (auto s = ask(list, &listed); !s.ok()) return s;
  std::vector<std::string> services;
  for (const auto& s : listed.list_services_response().service()) services.push_back(s.name());

  for (const std::string& service : services) {
    ServerReflectionRequest req;
    req.set_file_containing_symbol(service);
    ServerReflectionResponse resp;
    if (auto s = ask(req, &resp); !s.ok()) {
      return absl::NotFoundError(absl::StrCat(service, ": ", s.message()));
    }
    if (resp.file_descriptor_response().file_descriptor_proto_size() == 0) {
      return absl::NotFoundError(absl::StrCat(service, ": no file descriptor"));
    }
    if (auto s = take_files(resp); !s.ok()) return s;
  }
  // Imports the server did not send along (it skips files it sent before on
  // this stream; well-known types are fetched by name like any other).
  for (bool fetched = true; fetched;) {
    fetched = false;
    std::set<std::string> missing;
    for (const auto& [name, file] : files) {
      for (const std::string& dep : file.dependency()) {
        if (!files.count(dep)) missing.insert(dep);
      }
    }
    for (const std::string& dep : missing) {
      ServerReflectionRequest req;
      req.set_file_by_filename(dep);
      ServerReflectionResponse resp;
      if (auto s = ask(req, &resp); !s.ok()) {
        return absl::NotFoundError(absl::StrCat(dep, ": ", s.message()));
      }
      if (auto s = take_files(resp); !s.ok()) return s;
      if (!files.count(dep)) return absl::NotFoundError(absl::StrCat(dep, ": not sent"));
      fetched = true;
    }
  }
  stream->WritesDone();
  if (const grpc::Status s = stream->Finish(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(address, ": ", s.error_message()));
  }

  google::protobuf::DescriptorPool pool;
  std::set<std::string> built;
  std::string build_error;
  // Files in dependency order: BuildFile needs a file's imports first.
  std::function<void(const std::string&)> build = [&](const std::string& name) {
    if (!built.insert(name).second) return;
    for (const std::string& dep : files.at(name).dependency()) build(dep);
    if (pool.BuildFile(files.at(name)) == nullptr && build_error.empty()) build_error = name;
  };
  for (const auto& [name, file] : files) build(name);
  if (!build_error.empty()) {
    return absl::DataLossError(absl::StrCat(build_error, ": does not build"));
  }
  for (const std::string& service : services) {
    const google::protobuf::ServiceDescriptor* desc = pool.FindServiceByName(service);
    if (desc == nullptr || desc->method_count() == 0) {
      return absl::NotFoundError(absl::StrCat(service, ": not in the files reflection sent"));
    }
  }
  return services;
}

}  // namespace pettube::testing
