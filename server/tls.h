// TLS for the gRPC listener: reading and checking the PEM files named by
// fieldsync.v1.TlsConfig, and the grpc::ServerCredentials built from them.
//
// Thread-safety: the functions are pure apart from reading files.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fieldsync/v1/config.pb.h"

namespace fieldsync::server {

// The PEM contents of the files a TlsConfig names.
struct TlsMaterial {
  std::string cert_chain;   // tls.cert_file
  std::string private_key;  // tls.key_file
  std::string client_ca;    // tls.client_ca_file; empty when not set
};

// Reads the files of `tls` (tls.cert_file must be set) and checks them: each
// readable, the certificate file and the CA file hold at least one PEM
// certificate, the key file a PEM private key that matches the first
// certificate. Errors: InvalidArgument "config: tls.<field>: ..." naming the
// file and the reason.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(const v1::TlsConfig& tls);

// The credentials of the gRPC listener: insecure without TLS; otherwise
// grpc::SslServerCredentials over LoadTlsMaterial, with client certificates
// verified against tls.client_ca_file when set (requested and verified if
// presented; required when tls.require_client_cert). Errors: LoadTlsMaterial's.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const v1::ServerConfig& config);

}  // namespace fieldsync::server
