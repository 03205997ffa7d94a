// Temporary: methods whose implementation lands in a separate change.
#include "contrastive/common.h"
#include "contrastive/methods.h"

namespace contrastive {
MethodPtr make_moco(const MethodSpec&) { throw InputError("method moco is not available in this build yet"); }
MethodPtr make_simsiam(const MethodSpec&) { throw InputError("method simsiam is not available in this build yet"); }
MethodPtr make_byol(const MethodSpec&) { throw InputError("method byol is not available in this build yet"); }
MethodPtr make_amdim(const MethodSpec&) { throw InputError("method amdim is not available in this build yet"); }
}  // namespace contrastive
