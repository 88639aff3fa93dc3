#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include <cstddef>

namespace pettube::server {

// Arena options whose first block is `block` (caller-owned, e.g. on the
// stack): a short-lived arena that fits in it allocates nothing.
inline google::protobuf::ArenaOptions ArenaOnBlock(char* block, size_t size) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block;
  options.initial_block_size = size;
  return options;
}

// Puts a callback unary method's request and response on one protobuf
// arena per call, whose first block sits inside the call's holder: a
// response of many sub-messages then costs one allocation instead of one
// per field, and frees at once when the call ends.
//
//   ArenaMessageAllocator<GetMediaRequest, Media> allocator;  // outlives the server
//   service.SetMessageAllocatorFor_GetMedia(&allocator);
//
// Stateless, so thread-safe.
template <typename Request, typename Response, size_t kInitialBlockBytes = 8192>
class ArenaMessageAllocator : public grpc::MessageAllocator<Request, Response> {
 public:
  grpc::MessageHolder<Request, Response>* AllocateMessages() override { return new Holder(); }

 private:
  class Holder : public grpc::MessageHolder<Request, Response> {
   public:
    Holder() : arena_(ArenaOnBlock(block_, kInitialBlockBytes)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }
    void Release() override { delete this; }

   private:
    // Declared before the arena, which uses it until destroyed.
    alignas(std::max_align_t) char block_[kInitialBlockBytes];
    google::protobuf::Arena arena_;
  };
};

}  // namespace pettube::server
