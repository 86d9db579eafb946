// Random UUIDs, formatted in one place (the server's demo, the SDK and the
// tests each bring their own randomness).
#pragma once

#include <string>

namespace fieldsync::base {

// A random (version 4) UUID, lowercase, from 16 random bytes: the version and
// variant bits are set here, the caller brings the randomness.
std::string UuidV4(const unsigned char (&random)[16]);

}  // namespace fieldsync::base
