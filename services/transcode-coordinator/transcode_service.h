#pragma once

#include <memory>

#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/transcode/v1/transcode.grpc.pb.h"
#include "services/transcode-coordinator/coordinator.h"

namespace pettube::transcode {

// pettube.transcode.v1.TranscodeCoordinator on the callback API: names
// parsed, caller authorized, the Coordinator called, its status mapped.
// People (media.read / media.write) see only their own media: another
// owner's item is NOT_FOUND. Workloads and operators need transcode.read
// (reads, WatchJob) or transcode.admin (everything); workloads holding
// objects.write (the transcode workers) may read and watch jobs. Without an
// authenticator (in-process tests only) every call is allowed.
// Borrows both; thread-safe.
class TranscodeService final
    : public pettube::transcode::v1::TranscodeCoordinator::CallbackService {
 public:
  TranscodeService(Coordinator& coordinator, const auth::Authenticator* authenticator);

  grpc::ServerUnaryReactor* GetTranscodePlan(grpc::CallbackServerContext* context,
                                             const v1::GetTranscodePlanRequest* request,
                                             v1::TranscodePlan* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* RetryJob(grpc::CallbackServerContext* context,
                                     const v1::RetryJobRequest* request,
                                     v1::Job* response) override;
  grpc::ServerUnaryReactor* RetryMedia(grpc::CallbackServerContext* context,
                                       const v1::RetryMediaRequest* request,
                                       v1::TranscodePlan* response) override;
  grpc::ServerUnaryReactor* CancelTranscode(grpc::CallbackServerContext* context,
                                            const v1::CancelTranscodeRequest* request,
                                            v1::TranscodePlan* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(grpc::CallbackServerContext* context,
                                              const v1::WatchJobRequest* request) override;

  // The API view of a record.
  static v1::TranscodePlan ToPlan(const storage::MediaRecord& record);

 private:
  class WatchReactor;
  enum class Access { kRead, kWrite };
  // OK when the caller may act on `media_id` (NOT_FOUND hides others' media).
  absl::Status Authorize(const grpc::CallbackServerContext& context, absl::string_view media_id,
                         Access access);

  Coordinator& coordinator_;
  const auth::Authenticator* authenticator_;
};

}  // namespace pettube::transcode
