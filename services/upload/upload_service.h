#pragma once

// pettube.upload.v1.Upload over gRPC: authenticates each call and hands
// it to Uploads. The synchronous API on purpose: a Write stream does
// blocking file I/O and fsyncs as it goes, which must not run on the
// callback API's shared reactor threads; a sync stream has its own thread
// and gRPC's flow control pushes back on a client faster than the disk.

#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "services/upload/uploads.h"

namespace pettube::upload {

class UploadService final : public v1::Upload::Service {
 public:
  UploadService(Uploads& uploads, const auth::Authenticator& authenticator)
      : uploads_(uploads), authenticator_(authenticator) {}

  grpc::Status CreateUpload(grpc::ServerContext* context, const v1::CreateUploadRequest* request,
                            v1::UploadSession* response) override;
  grpc::Status Write(grpc::ServerContext* context, grpc::ServerReader<v1::WriteRequest>* reader,
                     v1::WriteResponse* response) override;
  grpc::Status QueryUpload(grpc::ServerContext* context, const v1::QueryUploadRequest* request,
                           v1::UploadSession* response) override;
  grpc::Status AbortUpload(grpc::ServerContext* context, const v1::AbortUploadRequest* request,
                           google::protobuf::Empty* response) override;
  grpc::Status StatObject(grpc::ServerContext* context, const v1::StatObjectRequest* request,
                          v1::ObjectInfo* response) override;

 private:
  Uploads& uploads_;
  const auth::Authenticator& authenticator_;
};

}  // namespace pettube::upload
