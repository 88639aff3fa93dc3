#include "cli/pettube/cli.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/pettube/downloader.h"
#include "cli/pettube/exit_codes.h"
#include "cli/pettube/media_format.h"
#include "cli/pettube/progress.h"
#include "cli/pettube/session.h"
#include "cli/pettube/uploader.h"
#include "libs/client/channel.h"
#include "libs/status/grpc_status.h"
#include "libs/time/proto_time.h"
#include "nlohmann/json.hpp"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"

namespace pettube::cli {
namespace {

using catalog::v1::Media;
using catalog::v1::MediaCatalog;

const FlagSpec kJson{"json", "", "print JSON instead of text"};

}  // namespace

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"auth", "HOST:PORT", "auth-token-exchange (default: $PETTUBE_AUTH, then the local stack)"},
      {"upload", "HOST:PORT", "upload service (default: $PETTUBE_UPLOAD, then the local stack)"},
      {"catalog", "HOST:PORT",
       "media-catalog (default: $PETTUBE_CATALOG, then the local stack)"},
      {"tls_ca_file", "PEM", "trust these CAs (TLS is used for any non-loopback server)"},
  };
  return *flags;
}

const std::vector<CommandSpec>& Commands() {
  static const auto* commands = new std::vector<CommandSpec>{
      {"login", "[USER]", "sign in (development identity provider, or an OIDC ID token)",
       "With USER: the local stack's development identity provider signs USER in.\n"
       "With --id_token_file: an ID token from your OIDC provider (e.g. Google), read from\n"
       "FILE or, with '-', from stdin. Credentials are kept in $XDG_CONFIG_HOME/pettube\n"
       "(default ~/.config/pettube), mode 0600, and renewed before they expire.",
       0, 1,
       {{"id_token_file", "FILE", "an OIDC ID token from FILE ('-': stdin) instead of USER"}}},
      {"logout", "", "forget the stored credentials", "", 0, 0, {}},
      {"whoami", "", "who is signed in, and until when", "", 0, 0, {kJson}},
      {"token", "", "print a valid access token (renewed if needed), for scripts", "", 0, 0, {}},
      {"upload", "FILE", "upload a video; rerun to resume an interrupted upload",
       "Shows bytes, rate and ETA (plain lines when stdout is not a terminal) and prints\n"
       "the new media's name. An interrupted upload of the same file (same path, size\n"
       "and modification time) continues where the server stopped.",
       1, 1,
       {{"title", "T", "title (default: the file name)"}, kJson}},
      {"ls", "", "list my media: name, title, state, duration, age", "", 0, 0,
       {kJson,
        {"public", "", "list everyone's PUBLIC media instead of mine"},
        {"state", "S", "only UPLOADED, PROCESSING, READY or FAILED"}}},
      {"watch", "NAME", "follow a media item until READY or FAILED (live progress)",
       "Exit code 0 when READY, 1 when FAILED (the reason is printed) or when --timeout\n"
       "passes first, 4 if deleted.",
       1, 1,
       {{"json", "", "print each change as one JSON line"},
        {"timeout", "DURATION", "give up after this long, e.g. 5m (default: wait forever)"}}},
      {"show", "NAME", "a media item with its renditions, sizes and signed URLs", "", 1, 1,
       {kJson}},
      {"play-url", "NAME", "print a URL a player can open", "", 1, 1,
       {{"rendition", "R", "a rendition (e.g. 720p, poster) or hls (default: the largest)"},
        kJson}},
      {"download", "NAME", "download a rendition to a file (resumes with HTTP Range)",
       "Bytes go to FILE.part first; rerun to resume; the SHA-256 is checked at the end.", 1, 1,
       {{"rendition", "R", "which rendition (default: the largest)"},
        {"output", "FILE", "where to write (required)", 'o'}}},
      {"rm", "NAME", "delete a media item and its files", "", 1, 1, {}},
      {"health", "HOST:PORT", "wait until a server reports SERVING (gRPC health, pushed)",
       "Follows grpc.health.v1.Health/Watch: returns as soon as the server (or --service)\n"
       "is SERVING; exit 1 if it is not within --timeout.",
       1, 1,
       {{"service", "NAME", "a service name, e.g. pettube.broker.v1.Broker (default: the server)"},
        {"timeout", "DURATION", "how long to wait, e.g. 30s (default 30s)"}}},
      {"dev-id-token", "USER", "print a development identity provider ID token (for tools)", "",
       1, 1, {}},
      {"workload-token", "", "print a workload access token (client credentials, for tools)", "",
       0, 0,
       {{"client_id", "ID", "workload client id (required)"},
        {"secret_file", "FILE", "file holding its secret (required)"},
        {"scopes", "A,B", "scopes to ask for (default: all the client may have)"}}},
  };
  return *commands;
}

namespace {

// What every command runs with.
struct Context {
  const Invocation& inv;
  const EnvLookup& env;
  std::ostream& out;
  std::ostream& err;
  bool terminal;
  std::string config_dir;
  Endpoints endpoints;
  ChannelFactory channels;
  std::unique_ptr<Session> session;

  bool json() const { return inv.Has("json"); }
};

int Fail(Context& c, const absl::Status& status) {
  std::string message(status.message());
  // A server error without a message still says what happened.
  if (message.empty() || absl::EndsWith(message, ": ")) {
    absl::StrAppend(&message, absl::StatusCodeToString(status.code()));
  }
  c.err << "pettube: " << message << "\n";
  return ExitCodeFor(status);
}

int Usage(Context& c, const std::string& message) {
  c.err << "pettube: " << message << " (see pettube " << c.inv.command << " --help)\n";
  return kExitUsage;
}

absl::StatusOr<std::string> AccessToken(Context& c) {
  auto creds = c.session->Current();
  if (!creds.ok()) return creds.status();
  return creds->access_token;
}

// A catalog stub plus a context carrying the caller's token.
struct CatalogCall {
  std::unique_ptr<MediaCatalog::Stub> stub;
  grpc::ClientContext ctx;
};

absl::StatusOr<std::unique_ptr<CatalogCall>> Catalog(Context& c, bool streaming = false) {
  auto address = RequireAddress(c.endpoints.catalog, "catalog", "media-catalog");
  if (!address.ok()) return address.status();
  auto token = AccessToken(c);
  if (!token.ok()) return token.status();
  auto channel = c.channels(*address);
  if (!channel.ok()) return channel.status();
  auto call = std::make_unique<CatalogCall>();
  call->stub = MediaCatalog::NewStub(*channel);
  call->ctx.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  if (!streaming) call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  return call;
}

absl::StatusOr<Media> GetMedia(Context& c, const std::string& name) {
  auto call = Catalog(c);
  if (!call.ok()) return call.status();
  catalog::v1::GetMediaRequest req;
  req.set_name(name);
  Media media;
  const grpc::Status s = (*call)->stub->GetMedia(&(*call)->ctx, req, &media);
  if (!s.ok()) return status::FromGrpcStatus(s, name);
  return media;
}

// ---- commands -------------------------------------------------------------

int Login(Context& c) {
  absl::StatusOr<Credentials> creds = absl::UnknownError("");
  if (c.inv.Has("id_token_file")) {
    if (!c.inv.args.empty()) return Usage(c, "give USER or --id_token_file, not both");
    const std::string file = c.inv.Get("id_token_file");
    std::string token;
    if (file == "-") {
      std::getline(std::cin, token, '\0');
    } else {
      auto text = ReadWholeFile(file);
      if (!text.ok()) return Fail(c, text.status());
      token = *text;
    }
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty()) return Usage(c, absl::StrCat("--id_token_file=", file, ": empty"));
    creds = c.session->LoginOidc(token);
  } else {
    std::string user;
    if (!c.inv.args.empty()) {
      user = c.inv.args[0];
    } else if (auto u = c.env("USER")) {
      user = *u;
    } else {
      return Usage(c, "give a USER name (or --id_token_file=FILE)");
    }
    creds = c.session->LoginDev(user);
  }
  if (!creds.ok()) {
    // A refused ID token means "not signed in", whatever code says why.
    if (absl::IsUnauthenticated(creds.status()) || absl::IsPermissionDenied(creds.status())) {
      c.err << "pettube: sign-in refused: " << creds.status().message() << "\n";
      return kExitNotSignedIn;
    }
    return Fail(c, creds.status());
  }
  c.out << "signed in" << (creds->user.empty() ? "" : absl::StrCat(" as ", creds->user)) << " ("
        << creds->identity << "), scopes " << absl::StrJoin(creds->scopes, " ") << "\n";
  return kExitOk;
}

int Logout(Context& c) {
  if (auto s = c.session->Logout(); !s.ok()) return Fail(c, s);
  c.out << "signed out\n";
  return kExitOk;
}

int Whoami(Context& c) {
  auto creds = c.session->Current();
  if (!creds.ok()) return Fail(c, creds.status());
  if (c.json()) {
    nlohmann::json j = {{"identity", creds->identity},
                        {"login", creds->login},
                        {"user", creds->user},
                        {"scopes", creds->scopes},
                        {"expire_time", absl::FormatTime(absl::RFC3339_sec, creds->expire_time,
                                                         absl::UTCTimeZone())},
                        {"auth_server", creds->auth_server}};
    c.out << j.dump() << "\n";
    return kExitOk;
  }
  c.out << (creds->user.empty() ? creds->identity : creds->user) << " (" << creds->identity
        << ", " << creds->login << " login) at " << creds->auth_server << "; token valid for "
        << FormatEta(creds->expire_time - absl::Now(), true) << ", renewed automatically\n";
  return kExitOk;
}

int Token(Context& c) {
  auto token = AccessToken(c);
  if (!token.ok()) return Fail(c, token.status());
  c.out << *token << "\n";
  return kExitOk;
}

int Upload(Context& c) {
  const std::string path = c.inv.args[0];
  auto address = RequireAddress(c.endpoints.upload, "upload", "the upload service");
  if (!address.ok()) return Fail(c, address.status());
  auto token = AccessToken(c);  // Fail fast when not signed in.
  if (!token.ok()) return Fail(c, token.status());
  auto channel = c.channels(*address);
  if (!channel.ok()) return Fail(c, channel.status());
  auto resume = ResumeStore::Load(c.config_dir + "/uploads.json");
  if (!resume.ok()) return Fail(c, resume.status());
  const std::string title = c.inv.Get("title", std::filesystem::path(path).filename().string());

  Uploader uploader(*channel, [&c] { return AccessToken(c); });
  std::unique_ptr<TransferProgress> progress;
  std::ostream& progress_out = c.json() ? c.err : c.out;
  UploadCallbacks callbacks;
  callbacks.on_start = [&](int64_t start, int64_t total) {
    progress = std::make_unique<TransferProgress>(
        std::filesystem::path(path).filename().string(), total, c.terminal && !c.json(),
        [&progress_out](const std::string& s) { progress_out << s << std::flush; });
    progress->Start(start);
  };
  callbacks.on_progress = [&](int64_t done) {
    if (progress) progress->Update(done);
  };
  auto result = uploader.UploadFile(path, title, *resume, callbacks);
  if (!result.ok()) {
    if (progress) progress_out << "\n";
    auto s = result.status();
    if (absl::IsUnavailable(s)) {
      return Fail(c, absl::UnavailableError(
                         absl::StrCat(s.message(), "; run the same command again to resume")));
    }
    return Fail(c, s);
  }
  if (progress) progress->Finish(result->size_bytes);
  if (c.json()) {
    nlohmann::json j = {{"media", result->media},     {"upload", result->upload},
                        {"size_bytes", result->size_bytes}, {"sha256", result->sha256},
                        {"resumed_from", result->resumed_from}};
    c.out << j.dump() << "\n";
  } else {
    c.out << "uploaded " << result->media << " (" << FormatBytes(result->size_bytes)
          << ", sha256 " << result->sha256.substr(0, 12) << "...); follow it with: pettube watch "
          << result->media << "\n";
  }
  return kExitOk;
}

int Ls(Context& c) {
  catalog::v1::ListMediaRequest req;
  req.set_owner(c.inv.Has("public") ? "public" : "me");
  req.set_page_size(200);
  if (c.inv.Has("state")) {
    catalog::v1::MediaState state;
    if (!catalog::v1::MediaState_Parse(c.inv.Get("state"), &state) ||
        state == catalog::v1::MEDIA_STATE_UNSPECIFIED || state == catalog::v1::DELETED) {
      return Usage(c, absl::StrCat("--state: must be UPLOADED, PROCESSING, READY or FAILED, got \"",
                                   c.inv.Get("state"), "\""));
    }
    req.set_state(state);
  }
  std::vector<Media> all;
  do {
    auto call = Catalog(c);
    if (!call.ok()) return Fail(c, call.status());
    catalog::v1::ListMediaResponse resp;
    const grpc::Status s = (*call)->stub->ListMedia(&(*call)->ctx, req, &resp);
    if (!s.ok()) return Fail(c, status::FromGrpcStatus(s, "ListMedia"));
    all.insert(all.end(), resp.media().begin(), resp.media().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  if (c.json()) {
    std::vector<std::string> items;
    for (const Media& m : all) items.push_back(MediaJson(m));
    c.out << "[" << absl::StrJoin(items, ",") << "]\n";
  } else {
    c.out << MediaTable(all, absl::Now());
  }
  return kExitOk;
}

int Show(Context& c) {
  auto name = MediaName(c.inv.args[0]);
  if (!name.ok()) return Usage(c, std::string(name.status().message()));
  auto media = GetMedia(c, *name);
  if (!media.ok()) return Fail(c, media.status());
  c.out << (c.json() ? MediaJson(*media) + "\n" : MediaDetails(*media, absl::Now()));
  return kExitOk;
}

int PlayUrlCommand(Context& c) {
  auto name = MediaName(c.inv.args[0]);
  if (!name.ok()) return Usage(c, std::string(name.status().message()));
  auto media = GetMedia(c, *name);
  if (!media.ok()) return Fail(c, media.status());
  auto url = PlayUrl(*media, c.inv.Get("rendition"));
  if (!url.ok()) return Fail(c, url.status());
  if (c.json()) {
    c.out << nlohmann::json({{"url", *url}, {"rendition", c.inv.Get("rendition")}}).dump() << "\n";
  } else {
    c.out << *url << "\n";
  }
  return kExitOk;
}

int Download(Context& c) {
  auto name = MediaName(c.inv.args[0]);
  if (!name.ok()) return Usage(c, std::string(name.status().message()));
  if (!c.inv.Has("output")) return Usage(c, "-o FILE is required");
  auto media = GetMedia(c, *name);
  if (!media.ok()) return Fail(c, media.status());
  auto rendition = PickRendition(*media, c.inv.Get("rendition"));
  if (!rendition.ok()) {
    if (absl::IsInvalidArgument(rendition.status())) {
      return Usage(c, std::string(rendition.status().message()));
    }
    return Fail(c, rendition.status());
  }
  const std::string output = c.inv.Get("output");
  std::unique_ptr<TransferProgress> progress;
  DownloadCallbacks callbacks;
  callbacks.on_start = [&](int64_t start, int64_t total) {
    progress = std::make_unique<TransferProgress>(
        absl::StrCat(media->name(), " ", rendition->name()),
        total > 0 ? total : rendition->size_bytes(), c.terminal,
        [&c](const std::string& s) { c.out << s << std::flush; });
    progress->Start(start);
  };
  callbacks.on_progress = [&](int64_t done) {
    if (progress) progress->Update(done);
  };
  const absl::Status s = DownloadToFile(rendition->url(), output, rendition->sha256(),
                                        rendition->size_bytes(), callbacks);
  if (!s.ok()) {
    if (progress) c.out << "\n";
    return Fail(c, s);
  }
  if (progress) progress->Finish(rendition->size_bytes());
  c.out << "saved " << rendition->name() << " of " << media->name() << " to " << output << "\n";
  return kExitOk;
}

// An upload just committed reaches the catalog a moment later (through the
// broker): waits up to `grace` for `name` to appear in the caller's media
// feed (pushed changes, not polling). NOT_FOUND if it does not.
absl::Status WaitUntilVisible(Context& c, const std::string& name, absl::Duration grace) {
  auto call = Catalog(c, /*streaming=*/true);
  if (!call.ok()) return call.status();
  (*call)->ctx.set_deadline(absl::ToChronoTime(absl::Now() + grace));
  catalog::v1::WatchMediaRequest req;
  req.set_name("media/-");
  auto reader = (*call)->stub->WatchMedia(&(*call)->ctx, req);
  Media m;
  while (reader->Read(&m)) {
    if (m.name() == name) {
      (*call)->ctx.TryCancel();
      reader->Finish();
      return absl::OkStatus();
    }
  }
  const grpc::Status s = reader->Finish();
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::NotFoundError(absl::StrCat(name, ": no such media"));
  }
  return status::FromGrpcStatus(s, name);
}

int Watch(Context& c) {
  auto name = MediaName(c.inv.args[0]);
  if (!name.ok()) return Usage(c, std::string(name.status().message()));
  absl::Time deadline = absl::InfiniteFuture();
  if (c.inv.Has("timeout")) {
    absl::Duration timeout;
    if (!absl::ParseDuration(c.inv.Get("timeout"), &timeout) || timeout <= absl::ZeroDuration()) {
      return Usage(c, absl::StrCat("--timeout: not a positive duration (e.g. 5m), got \"",
                                   c.inv.Get("timeout"), "\""));
    }
    deadline = absl::Now() + timeout;
  }
  std::string last_line;
  std::string last_state = "unknown";
  // The server ends the stream with UNAVAILABLE when it drains; the first
  // messages of a new stream are the current state again, so reconnecting
  // loses nothing.
  for (int reconnects = 0;; ++reconnects) {
    auto call = Catalog(c, /*streaming=*/true);
    if (!call.ok()) return Fail(c, call.status());
    if (deadline != absl::InfiniteFuture()) (*call)->ctx.set_deadline(absl::ToChronoTime(deadline));
    catalog::v1::WatchMediaRequest req;
    req.set_name(*name);
    auto reader = (*call)->stub->WatchMedia(&(*call)->ctx, req);
    Media m;
    int outcome = -1;
    while (reader->Read(&m)) {
      last_state = StateName(m.state());
      if (c.json()) {
        c.out << MediaJson(m) << "\n" << std::flush;
      } else {
        std::string line = WatchLine(m);
        if (m.state() == catalog::v1::PROCESSING && c.terminal) {
          const int filled = static_cast<int>(m.progress() * 20);
          line = absl::StrCat(line, "  [", std::string(filled, '#'), std::string(20 - filled, '-'),
                              "]");
        }
        if (line != last_line) {
          if (c.terminal) {
            c.out << "\r\x1b[2K" << line << std::flush;
          } else {
            c.out << line << "\n" << std::flush;
          }
          last_line = line;
        }
      }
      if (m.state() == catalog::v1::READY) outcome = kExitOk;
      if (m.state() == catalog::v1::FAILED) outcome = kExitFailure;
      if (m.state() == catalog::v1::DELETED) outcome = kExitNotFound;
      if (outcome >= 0) break;
    }
    if (c.terminal && !c.json() && !last_line.empty()) c.out << "\n";
    if (outcome >= 0) {
      (*call)->ctx.TryCancel();
      reader->Finish();
      if (outcome == kExitFailure && !c.json()) {
        c.err << "pettube: " << m.name() << " FAILED: " << m.error() << "\n";
      }
      return outcome;
    }
    const grpc::Status s = reader->Finish();
    if (s.error_code() == grpc::StatusCode::NOT_FOUND && last_state == "unknown" &&
        reconnects == 0) {
      if (auto visible = WaitUntilVisible(c, *name, absl::Seconds(10)); !visible.ok()) {
        return Fail(c, visible);
      }
      continue;  // It exists now: watch it.
    }
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return Fail(c, absl::DeadlineExceededError(absl::StrCat(
                         *name, " is still ", last_state, " after --timeout=", c.inv.Get("timeout"))));
    }
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && reconnects < 5) {
      last_line.clear();
      continue;
    }
    if (s.ok()) return Fail(c, absl::UnavailableError("WatchMedia: the stream ended early"));
    return Fail(c, status::FromGrpcStatus(s, *name));
  }
}

int Rm(Context& c) {
  auto name = MediaName(c.inv.args[0]);
  if (!name.ok()) return Usage(c, std::string(name.status().message()));
  auto call = Catalog(c);
  if (!call.ok()) return Fail(c, call.status());
  catalog::v1::DeleteMediaRequest req;
  req.set_name(*name);
  google::protobuf::Empty empty;
  const grpc::Status s = (*call)->stub->DeleteMedia(&(*call)->ctx, req, &empty);
  if (!s.ok()) return Fail(c, status::FromGrpcStatus(s, *name));
  c.out << "deleted " << *name << "\n";
  return kExitOk;
}

int Health(Context& c) {
  absl::Duration timeout = absl::Seconds(30);
  if (c.inv.Has("timeout") && !absl::ParseDuration(c.inv.Get("timeout"), &timeout)) {
    return Usage(c, absl::StrCat("--timeout: not a duration (e.g. 30s), got \"",
                                 c.inv.Get("timeout"), "\""));
  }
  const std::string address = c.inv.args[0];
  auto channel = c.channels(address);
  if (!channel.ok()) return Fail(c, channel.status());
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ctx.set_wait_for_ready(true);  // A server still starting is waited for, not refused.
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(c.inv.Get("service"));
  auto reader = stub->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse resp;
  while (reader->Read(&resp)) {
    if (resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      ctx.TryCancel();
      reader->Finish();
      c.out << address << " SERVING\n";
      return kExitOk;
    }
  }
  const grpc::Status s = reader->Finish();
  return Fail(c, absl::UnavailableError(absl::StrCat(
                     address, " not SERVING within ", absl::FormatDuration(timeout),
                     s.ok() ? "" : absl::StrCat(" (", s.error_message(), ")"))));
}

int DevIdToken(Context& c) {
  auto minted = c.session->MintDevIdToken(c.inv.args[0]);
  if (!minted.ok()) return Fail(c, minted.status());
  c.out << minted->id_token() << "\n";
  return kExitOk;
}

int WorkloadToken(Context& c) {
  if (!c.inv.Has("client_id") || !c.inv.Has("secret_file")) {
    return Usage(c, "--client_id and --secret_file are required");
  }
  auto address = RequireAddress(c.endpoints.auth, "auth", "auth-token-exchange");
  if (!address.ok()) return Fail(c, address.status());
  auto secret = ReadWholeFile(c.inv.Get("secret_file"));
  if (!secret.ok()) return Fail(c, secret.status());
  auto channel = c.channels(*address);
  if (!channel.ok()) return Fail(c, channel.status());
  auto stub = auth::v1::TokenExchange::NewStub(*channel);
  auth::v1::IssueWorkloadTokenRequest req;
  req.set_client_id(c.inv.Get("client_id"));
  req.set_client_secret(std::string(absl::StripAsciiWhitespace(*secret)));
  for (absl::string_view scope : absl::StrSplit(c.inv.Get("scopes"), ',', absl::SkipEmpty())) {
    req.add_scopes(std::string(scope));
  }
  auth::v1::ExchangeTokenResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(15)));
  const grpc::Status s = stub->IssueWorkloadToken(&ctx, req, &resp);
  if (!s.ok()) return Fail(c, status::FromGrpcStatus(s, "IssueWorkloadToken"));
  c.out << resp.access_token() << "\n";
  return kExitOk;
}

}  // namespace

int RunCli(const std::vector<std::string>& argv, const EnvLookup& env, std::ostream& out,
           std::ostream& err, bool terminal) {
  auto inv = ParseArgs(Commands(), GlobalFlags(), argv);
  if (!inv.ok()) {
    err << "pettube: " << inv.status().message() << "\n";
    if (argv.empty()) err << "\n" << HelpText(Commands(), GlobalFlags(), nullptr);
    return kExitUsage;
  }
  if (inv->help || inv->command.empty()) {
    out << HelpText(Commands(), GlobalFlags(), FindCommand(Commands(), inv->command));
    return kExitOk;
  }
  auto config_dir = ConfigDir(env);
  if (!config_dir.ok()) {
    err << "pettube: " << config_dir.status().message() << "\n";
    return kExitFailure;
  }
  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  Context c{*inv, env, out, err, terminal, *config_dir,
            ResolveEndpoints(inv->flags, env, cwd, ReadWholeFile), nullptr, nullptr};
  client::ChannelOptions channel_options;
  channel_options.tls_ca_file = inv->Get("tls_ca_file");
  c.channels = [channel_options](const std::string& target) {
    return client::MakeChannel(target, channel_options);
  };
  c.session = std::make_unique<Session>(c.config_dir, c.endpoints.auth, c.channels);

  const std::string& cmd = inv->command;
  if (cmd == "login") return Login(c);
  if (cmd == "logout") return Logout(c);
  if (cmd == "whoami") return Whoami(c);
  if (cmd == "token") return Token(c);
  if (cmd == "upload") return Upload(c);
  if (cmd == "ls") return Ls(c);
  if (cmd == "watch") return Watch(c);
  if (cmd == "show") return Show(c);
  if (cmd == "play-url") return PlayUrlCommand(c);
  if (cmd == "download") return Download(c);
  if (cmd == "rm") return Rm(c);
  if (cmd == "health") return Health(c);
  if (cmd == "dev-id-token") return DevIdToken(c);
  if (cmd == "workload-token") return WorkloadToken(c);
  err << "pettube: command \"" << cmd << "\" is declared but not implemented\n";
  return kExitFailure;
}

}  // namespace pettube::cli
