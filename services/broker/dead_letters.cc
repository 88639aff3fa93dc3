#include "services/broker/dead_letters.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"

namespace pettube::broker {

using time::ToProto;

absl::StatusOr<std::optional<StoredEvent>> DeadLetters::OwedCopyLocked(SubState& sub,
                                                                       uint64_t seq) {
  auto a = sub.attempts.find(seq);
  if (a == sub.attempts.end() || !a->second.owed_copy) return std::nullopt;
  return s_.store->GetOwedCopy(sub.id, seq);
}

void DeadLetters::DeadLetterLocked(SubState& sub, uint64_t seq, std::string reason,
                                   std::shared_ptr<const StoredEvent> event) {
  const SubState::Attempt attempt = sub.attempts[seq];
  s_.parts.dispatcher->FinishSeqLocked(sub, seq);
  sub.probe.dead_lettered->Increment();
  const bool keep = sub.config.dead_letter_policy().enabled();
  if (keep) ++sub.dead_count;
  if (event == nullptr) {
    auto loaded = s_.store->GetEvent(seq);
    if (loaded.ok() && !loaded->has_value()) {
      // FinishSeqLocked forgot the attempt: look for the owed copy directly.
      if (attempt.owed_copy) loaded = s_.store->GetOwedCopy(sub.id, seq);
    }
    if (loaded.ok() && loaded->has_value()) {
      event = std::make_shared<StoredEvent>(std::move(**loaded));
    }
  }
  v1::DeadLetter dead;
  dead.set_sequence(seq);
  dead.set_attempts(attempt.attempts);
  dead.set_last_error(reason.empty() ? attempt.last_error : reason);
  if (event != nullptr) {
    event->Parse(dead.mutable_event());
    *dead.mutable_publish_time() = ToProto(event->publish_time);
  }
  if (attempt.first_delivery != absl::InfinitePast()) {
    *dead.mutable_first_delivery_time() = ToProto(attempt.first_delivery);
  }
  *dead.mutable_dead_letter_time() = ToProto(s_.clock->Now());
  s_.committer->Submit({[id = sub.id, seq, keep, persisted = attempt.persisted,
                         dead = std::move(dead)](BrokerStore::Batch& b) {
                          if (keep) b.PutDeadLetter(id, dead);
                          b.Dequeue(id, seq);
                          if (persisted) b.DeletePending(id, seq);
                        },
                        nullptr, true, false});
}

void DeadLetters::List(const std::string& name, int page_size, const std::string& page_token,
                       const Access& access, Done done) {
  if (auto s = ValidateName(name, "subscription"); !s.ok()) return done(s);
  if (page_size < 0) return done(absl::InvalidArgumentError("page_size: must not be negative"));
  if (page_size == 0) page_size = 50;
  page_size = std::min(page_size, 1000);
  uint64_t from = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &from)) {
    return done(absl::InvalidArgumentError("page_token: not a token from a previous response"));
  }
  uint32_t id;
  {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr) {
      return done(absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist")));
    }
    if (auto s = s_.MayUseLocked(*sub, access); !s.ok()) return done(s);
    id = sub->id;
  }
  // Dead-lettering is queued to the committer: read once what is queued is
  // written, so a listing sees every settlement made before it. Read on the
  // committer thread (one page), answered from there.
  Committer::Op op;
  op.done = [this, id, from, page_size, done = std::move(done)](const absl::Status& status) {
    if (!status.ok()) return done(status);
    done(ReadPage(id, from, page_size));
  };
  s_.committer->Submit(std::move(op));
}

absl::StatusOr<v1::ListDeadLettersResponse> DeadLetters::ReadPage(uint32_t id, uint64_t from,
                                                                  int page_size) {
  v1::ListDeadLettersResponse out;
  // Bounded by bytes too: a page of large events must still reach a client
  // with the default receive limit (a letter bigger than the limit comes
  // alone). Read in small chunks, so memory stays near one page.
  constexpr size_t kChunk = 16;
  size_t bytes = 64;  // the page token and framing
  for (uint64_t cursor = from;;) {
    std::vector<v1::DeadLetter> letters;
    if (auto s = s_.store->ScanDeadLetters(id, cursor, kChunk, &letters); !s.ok()) return s;
    for (v1::DeadLetter& letter : letters) {
      const size_t size = letter.ByteSizeLong() + 8;
      if (out.dead_letters_size() == page_size ||
          (out.dead_letters_size() > 0 && bytes + size > s_.options.max_response_bytes)) {
        out.set_next_page_token(absl::StrCat(letter.sequence()));
        return out;
      }
      bytes += size;
      *out.add_dead_letters() = std::move(letter);
    }
    if (letters.size() < kChunk) return out;
    cursor = out.dead_letters(out.dead_letters_size() - 1).sequence() + 1;
  }
}

}  // namespace pettube::broker
