// RETURN_IF_ERROR and ASSIGN_OR_RETURN for the modules above storage
// (domain, server), which reach storage only through sync. The definitions
// live in storage/status_macros.h.
#pragma once

#include "storage/status_macros.h"
