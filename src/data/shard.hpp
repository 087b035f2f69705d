// Private to the loaders: cutting a data set's labels to the shard whose features they read.
#pragma once

#include "backprop/data.hpp"

namespace backprop::detail {

// ds holds a shard's features (first_row, n) and the whole file's labels or targets (total_rows
// of them): keeps the shard's rows of those too.
void cut_labels_to_shard(Dataset& ds);

}  // namespace backprop::detail
