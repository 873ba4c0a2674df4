#include "store/registry_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "store/manifest.h"

namespace resident::store {
namespace {

using nlohmann::json;

constexpr size_t kMaxSmallBody = 4u << 20;  // manifests, tokens, error bodies

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The parameters of a `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` header.
std::map<std::string, std::string> ChallengeParams(std::string_view header) {
  std::map<std::string, std::string> out;
  size_t i = header.find(' ');
  if (i == std::string_view::npos) return out;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    size_t eq = header.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key = Lower(std::string(header.substr(i, eq - i)));
    i = eq + 1;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') value += header[i++];
    }
    out[key] = value;
  }
  return out;
}

// The registry's own words for a failed request: {"errors":[{"code":..,"message":..}]}.
std::string RegistryMessage(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("errors") && j["errors"].is_array() && !j["errors"].empty()) {
    const json& e = j["errors"][0];
    std::string code = e.is_object() && e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
    std::string msg = e.is_object() && e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
    if (!msg.empty()) return code.empty() ? msg : code + ": " + msg;
    return code;
  }
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  return "";
}

struct Response {
  long status = 0;
  std::string body;                // small bodies only (never a blob's)
  std::string www_authenticate;
  std::string location;
  std::string content_range;
};

}  // namespace

struct RegistryClient::Impl {
  ModelName name;
  RegistryOptions options;
  std::string token;  // a Bearer token from the last challenge, reused while it works

  std::string Base() const { return (options.insecure ? "http://" : "https://") + name.host; }
  std::string Repo() const { return Base() + "/v2/" + name.ns + "/" + name.model; }

  struct Call {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;
    // Body: a string, or a file descriptor with a length.
    const std::string* body = nullptr;
    int body_fd = -1;
    uint64_t body_size = 0;
    const UploadProgress* upload_progress = nullptr;
    // Download: a 2xx body goes to the sink instead of Response::body, from this offset.
    const BlobSink* sink = nullptr;
  };

  struct Transfer {
    Response* response = nullptr;
    const Call* call = nullptr;
    bool sink_stopped = false;
    bool body_too_large = false;
    long status_seen = 0;
    uint64_t at = 0;  // a download: the blob offset of the next byte (set when its status arrives)
    bool started = false;  // a download's first byte arrived
  };

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string line(data, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
      // A new response (after a redirect or a 100): its headers start afresh.
      t->response->www_authenticate.clear();
      t->response->location.clear();
      t->response->content_range.clear();
      size_t sp = line.find(' ');
      t->status_seen = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
      t->at = 0;
      t->started = false;
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) return size * n;
    std::string key = Lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(value.begin());
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
    if (key == "www-authenticate") t->response->www_authenticate = value;
    else if (key == "location") t->response->location = value;
    else if (key == "content-range") t->response->content_range = value;
    return size * n;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t len = size * n;
    if (t->call->sink != nullptr && t->status_seen >= 200 && t->status_seen < 300) {
      if (t->status_seen == 206 && !t->started) {
        // "bytes START-END/TOTAL": where these bytes start.
        const std::string& cr = t->response->content_range;
        size_t sp = cr.find(' ');
        if (sp == std::string::npos) return 0;
        t->at = std::strtoull(cr.c_str() + sp + 1, nullptr, 10);
      }
      t->started = true;
      if (!(*t->call->sink)(t->at, data, len)) {
        t->sink_stopped = true;
        return 0;  // curl stops with CURLE_WRITE_ERROR
      }
      t->at += len;
      return len;
    }
    if (t->response->body.size() + len > kMaxSmallBody) {
      t->body_too_large = true;
      return 0;
    }
    t->response->body.append(data, len);
    return len;
  }

  static size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    ssize_t got = ::read(t->call->body_fd, buffer, size * n);
    if (got < 0) return CURL_READFUNC_ABORT;
    return static_cast<size_t>(got);
  }

  static int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
    auto* t = static_cast<Transfer*>(user);
    if (t->call->upload_progress != nullptr && !(*t->call->upload_progress)(static_cast<uint64_t>(ulnow))) {
      t->sink_stopped = true;
      return 1;
    }
    return 0;
  }

  // One request, no authentication retry. Errors: transport failures only (HTTP statuses are the
  // caller's to judge).
  Result<Response> SendOnce(const Call& call) {
    GlobalInitOnce();
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return Status::Internal("cannot start an HTTP client (curl_easy_init)");
    Response response;
    Transfer t{&response, &call};
    curl_slist* headers = nullptr;
    for (const std::string& h : call.headers) headers = curl_slist_append(headers, h.c_str());
    // The token goes to the registry itself only, never to another host an upload's Location or a
    // redirect names (a CDN, a storage bucket).
    if (!token.empty() && HostOf(call.url) == name.host) {
      headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
    }
    headers = curl_slist_append(headers, "User-Agent: resident (ollama-compatible)");
    curl_easy_setopt(curl, CURLOPT_URL, call.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    // GET and HEAD follow redirects (blob downloads go to a CDN; a registry on S3 answers a blob's
    // HEAD with a redirect too); uploads never.
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, call.method == "GET" || call.method == "HEAD" ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, options.insecure ? "http,https" : "https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, options.insecure ? "http,https" : "https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    if (call.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (call.method == "PUT") {
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      if (call.body_fd >= 0) {
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
        curl_easy_setopt(curl, CURLOPT_READDATA, &t);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(call.body_size));
        curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
      } else {
        static const std::string kEmpty;
        const std::string* body = call.body != nullptr ? call.body : &kEmpty;
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 0L);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
      }
    } else if (call.method == "POST") {
      static const std::string kEmpty;
      const std::string* body = call.body != nullptr ? call.body : &kEmpty;
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    if (call.upload_progress != nullptr) {
      curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
      curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    }
    char error[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (t.sink_stopped) return Status::Cancelled("the transfer was stopped");
    if (t.body_too_large) return Status::Internal("the registry's answer to " + call.url + " is larger than 4 MiB");
    if (rc != CURLE_OK) {
      std::string why = error[0] != '\0' ? error : curl_easy_strerror(rc);
      return Status::Unavailable("cannot reach " + name.host + ": " + why);
    }
    return response;
  }

  // Sends, answering one Bearer challenge. Never for a blob's upload (its body is read once):
  // PutBlob's upload session answers the challenge first, then its PUT goes by SendOnce.
  Result<Response> Send(const Call& call) {
    auto r = SendOnce(call);
    if (!r.ok() || r->status != 401) return r;
    RESIDENT_RETURN_IF_ERROR(Authenticate(r->www_authenticate));
    r = SendOnce(call);
    if (r.ok() && r->status == 401) {
      return Status::FailedPrecondition(name.host + " refused the token it issued (" + Describe(*r) + ")");
    }
    return r;
  }

  Status Authenticate(const std::string& challenge) {
    if (Lower(challenge).rfind("bearer ", 0) != 0) {
      return Status::FailedPrecondition(name.host + " asks for a login" +
                                        (challenge.empty() ? std::string() : " (" + challenge + ")") +
                                        ", which resident does not do: only anonymous token access is supported");
    }
    auto params = ChallengeParams(challenge);
    std::string realm = params["realm"];
    if (realm.rfind("https://", 0) != 0 && !(options.insecure && realm.rfind("http://", 0) == 0)) {
      return Status::FailedPrecondition(name.host + " sent a token realm resident will not use: \"" + realm + "\"");
    }
    CURL* esc = curl_easy_init();
    std::string url = realm;
    char sep = realm.find('?') == std::string::npos ? '?' : '&';
    for (const char* key : {"service", "scope"}) {
      if (params.count(key) == 0) continue;
      char* v = curl_easy_escape(esc, params[key].data(), static_cast<int>(params[key].size()));
      url += sep + std::string(key) + "=" + v;
      sep = '&';
      curl_free(v);
    }
    curl_easy_cleanup(esc);
    token.clear();
    Call call;
    call.url = url;
    auto r = SendOnce(call);
    if (!r.ok()) return r.status();
    if (r->status != 200) return Status::FailedPrecondition(name.host + " gave no token (" + Describe(*r) + ")");
    json j = json::parse(r->body, nullptr, false);
    for (const char* key : {"token", "access_token"}) {
      if (j.is_object() && j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
        token = j[key].get<std::string>();
        return Status::Ok();
      }
    }
    return Status::FailedPrecondition(name.host + " answered its token request without a token");
  }

  // "host[:port]" of an http(s) URL.
  static std::string HostOf(const std::string& url) {
    size_t start = url.find("://");
    if (start == std::string::npos) return "";
    start += 3;
    size_t end = url.find_first_of("/?#", start);
    return Lower(url.substr(start, end == std::string::npos ? std::string::npos : end - start));
  }

  static std::string Describe(const Response& r) {
    std::string msg = RegistryMessage(r.body);
    return "HTTP " + std::to_string(r.status) + (msg.empty() ? "" : ": " + msg);
  }

  // A failed answer as a Status.
  Status Failed(const Response& r, const std::string& what) const {
    if (r.status == 401 || r.status == 403) {
      return Status::FailedPrecondition(what + ": " + name.host + " refused access (" + Describe(r) + ")");
    }
    return Status::Internal(what + ": " + name.host + " answered " + Describe(r));
  }
};

RegistryClient::RegistryClient(ModelName name, RegistryOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->options = options;
}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::BaseUrl() const { return impl_->Base(); }

Result<std::string> RegistryClient::GetManifest() {
  Impl::Call call;
  call.url = impl_->Repo() + "/manifests/" + impl_->name.tag;
  // Ollama's manifests are Docker's v2 type; an OCI manifest has the same fields.
  call.headers.push_back("Accept: " + std::string(kManifestMediaType) + ", application/vnd.oci.image.manifest.v1+json");
  auto r = impl_->Send(call);
  if (!r.ok()) return r.status();
  if (r->status == 404) return Status::NotFound("file does not exist");
  if (r->status != 200) return impl_->Failed(*r, "the manifest");
  return std::move(r->body);
}

Status RegistryClient::GetBlob(std::string_view digest, uint64_t offset, const BlobSink& sink) {
  Impl::Call call;
  call.url = impl_->Repo() + "/blobs/" + std::string(digest);
  if (offset > 0) call.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
  call.sink = &sink;
  auto r = impl_->Send(call);
  if (!r.ok()) return r.status();
  // 206: the sink was told where the range started (Content-Range); 200: from byte 0.
  if (r->status == 206 || r->status == 200) return Status::Ok();
  // Overloaded or failing for a moment (a CDN's 502, a rate limit): worth another try.
  if (r->status == 429 || r->status >= 500) {
    return Status::Unavailable(impl_->name.host + " answered blob " + std::string(digest) + " with " + Impl::Describe(*r));
  }
  if (r->status == 404) return Status::NotFound("blob " + std::string(digest) + " does not exist on " + impl_->name.host);
  return impl_->Failed(*r, "blob " + std::string(digest));
}

Result<bool> RegistryClient::HasBlob(std::string_view digest) {
  Impl::Call call;
  call.method = "HEAD";
  call.url = impl_->Repo() + "/blobs/" + std::string(digest);
  auto r = impl_->Send(call);
  if (!r.ok()) return r.status();
  if (r->status == 200) return true;
  if (r->status == 404) return false;
  return impl_->Failed(*r, "blob " + std::string(digest));
}

Status RegistryClient::PutBlob(std::string_view digest, const std::string& path, uint64_t size,
                               const UploadProgress& progress) {
  // The upload session (POST) answers any challenge first, so that the PUT with the blob's bytes
  // goes once.
  Impl::Call start;
  start.method = "POST";
  start.url = impl_->Repo() + "/blobs/uploads/";
  auto r = impl_->Send(start);
  if (!r.ok()) return r.status();
  if (r->status != 202 || r->location.empty()) return impl_->Failed(*r, "starting the upload of " + std::string(digest));
  std::string location = r->location;
  if (location.rfind("http://", 0) != 0 && location.rfind("https://", 0) != 0) {
    location = impl_->Base() + (location.front() == '/' ? "" : "/") + location;
  }
  location += (location.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + std::string(digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Internal("cannot open " + path + ": " + std::strerror(errno));
  Impl::Call put;
  put.method = "PUT";
  put.url = location;
  put.headers.push_back("Content-Type: application/octet-stream");
  put.body_fd = fd;
  put.body_size = size;
  put.upload_progress = &progress;
  auto done = impl_->SendOnce(put);
  ::close(fd);
  if (!done.ok()) return done.status();
  if (done->status != 201) return impl_->Failed(*done, "uploading blob " + std::string(digest));
  return Status::Ok();
}

Status RegistryClient::PutManifest(const std::string& bytes) {
  Impl::Call call;
  call.method = "PUT";
  call.url = impl_->Repo() + "/manifests/" + impl_->name.tag;
  // Its own media type (a pulled OCI manifest is pushed as one), Docker's v2 by default.
  std::string media_type(kManifestMediaType);
  json j = json::parse(bytes, nullptr, false);
  if (j.is_object() && j.contains("mediaType") && j["mediaType"].is_string()) {
    const std::string declared = j["mediaType"].get<std::string>();
    if (declared.find_first_of("\r\n") == std::string::npos && !declared.empty()) media_type = declared;
  }
  call.headers.push_back("Content-Type: " + media_type);
  call.body = &bytes;
  auto r = impl_->Send(call);
  if (!r.ok()) return r.status();
  if (r->status != 201 && r->status != 200) return impl_->Failed(*r, "the manifest");
  return Status::Ok();
}

}  // namespace resident::store
