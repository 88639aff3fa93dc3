#include "services/upload/upload_service.h"

#include "libs/status/grpc_status.h"

namespace pettube::upload {
namespace {

using status::ToGrpcStatus;

template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = *std::move(result);
  return ToGrpcStatus(result.status());
}

}  // namespace

grpc::Status UploadService::CreateUpload(grpc::ServerContext* context,
                                         const v1::CreateUploadRequest* request,
                                         v1::UploadSession* response) {
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Answer(uploads_.Create(*caller, *request), response);
}

grpc::Status UploadService::Write(grpc::ServerContext* context,
                                  grpc::ServerReader<v1::WriteRequest>* reader,
                                  v1::WriteResponse* response) {
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  v1::WriteRequest request;
  if (!reader->Read(&request)) {
    return ToGrpcStatus(absl::InvalidArgumentError("Write: the stream carried no request"));
  }
  if (request.upload().empty()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("upload: required on the first message of a Write stream"));
  }
  auto writer = uploads_.BeginWrite(*caller, request.upload());
  if (!writer.ok()) return ToGrpcStatus(writer.status());
  do {
    if (absl::Status s = (*writer)->Write(request); !s.ok()) return ToGrpcStatus(s);
  } while (reader->Read(&request));
  if (context->IsCancelled()) {
    // The writer's destructor still records what arrived, for the resume.
    return grpc::Status(grpc::StatusCode::CANCELLED, "Write: cancelled by the client");
  }
  if (absl::Status s = (*writer)->Checkpoint(); !s.ok()) return ToGrpcStatus(s);
  response->set_committed_size((*writer)->committed_size());
  if (const v1::CommittedMedia* committed = (*writer)->committed(); committed != nullptr) {
    *response->mutable_committed() = *committed;
  }
  return grpc::Status::OK;
}

grpc::Status UploadService::QueryUpload(grpc::ServerContext* context,
                                        const v1::QueryUploadRequest* request,
                                        v1::UploadSession* response) {
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Answer(uploads_.Query(*caller, request->name()), response);
}

grpc::Status UploadService::AbortUpload(grpc::ServerContext* context,
                                        const v1::AbortUploadRequest* request,
                                        google::protobuf::Empty* /*response*/) {
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return ToGrpcStatus(uploads_.Abort(*caller, request->name()));
}

grpc::Status UploadService::StatObject(grpc::ServerContext* context,
                                       const v1::StatObjectRequest* request,
                                       v1::ObjectInfo* response) {
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  return Answer(uploads_.Stat(*caller, request->bucket(), request->key()), response);
}

}  // namespace pettube::upload
