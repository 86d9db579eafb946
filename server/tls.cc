#include "server/tls.h"

#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fieldsync::server {
namespace {

absl::Status TlsError(const std::string& setting, const std::string& path,
                      const std::string& reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("config: tls.", setting, ": ", path, ": ", reason));
}

absl::StatusOr<std::string> ReadPemFile(const std::string& setting, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) return TlsError(setting, path, absl::StrCat("cannot read: ", strerror(errno)));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return TlsError(setting, path, "read error");
  return contents.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of `pem`, or null.
X509Ptr FirstCertificate(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();  // Leave no error queued for gRPC's own TLS code.
  return cert;
}

}  // namespace

absl::StatusOr<TlsMaterial> LoadTlsMaterial(const v1::TlsConfig& tls) {
  TlsMaterial material;
  auto cert = ReadPemFile("cert_file", tls.cert_file());
  if (!cert.ok()) return cert.status();
  material.cert_chain = *std::move(cert);
  X509Ptr leaf = FirstCertificate(material.cert_chain);
  if (leaf == nullptr) return TlsError("cert_file", tls.cert_file(), "holds no PEM certificate");

  auto key = ReadPemFile("key_file", tls.key_file());
  if (!key.ok()) return key.status();
  material.private_key = *std::move(key);
  BioPtr key_bio = MemoryBio(material.private_key);
  // A null passphrase callback with null user data would prompt on the
  // terminal for an encrypted key; an empty passphrase makes it fail instead.
  static char kNoPassphrase[] = "";
  PkeyPtr pkey(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, kNoPassphrase));
  ERR_clear_error();
  if (pkey == nullptr) {
    return TlsError("key_file", tls.key_file(), "holds no unencrypted PEM private key");
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return TlsError("key_file", tls.key_file(),
                    absl::StrCat("does not match the certificate in ", tls.cert_file()));
  }

  if (!tls.client_ca_file().empty()) {
    auto ca = ReadPemFile("client_ca_file", tls.client_ca_file());
    if (!ca.ok()) return ca.status();
    material.client_ca = *std::move(ca);
    if (FirstCertificate(material.client_ca) == nullptr) {
      return TlsError("client_ca_file", tls.client_ca_file(), "holds no PEM certificate");
    }
  }
  return material;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const v1::ServerConfig& config) {
  if (config.tls().cert_file().empty()) return grpc::InsecureServerCredentials();
  auto material = LoadTlsMaterial(config.tls());
  if (!material.ok()) return material.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({material->private_key, material->cert_chain});
  if (material->client_ca.empty()) {
    options.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  } else {
    options.pem_root_certs = material->client_ca;
    options.client_certificate_request =
        config.tls().require_client_cert()
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace fieldsync::server
