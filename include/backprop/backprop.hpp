// backprop: fully connected neural networks with hand-derived forward and back propagation.
// The umbrella header; each header below documents its own piece.
#pragma once

#include "backprop/activation.hpp"
#include "backprop/batch.hpp"
#include "backprop/checkpoint.hpp"
#include "backprop/collective.hpp"
#include "backprop/data.hpp"
#include "backprop/dense.hpp"
#include "backprop/error.hpp"
#include "backprop/fit.hpp"
#include "backprop/gradcheck.hpp"
#include "backprop/io.hpp"
#include "backprop/loss.hpp"
#include "backprop/matrix.hpp"
#include "backprop/model.hpp"
#include "backprop/model_file.hpp"
#include "backprop/optimizer.hpp"
#include "backprop/parallel.hpp"
#include "backprop/rng.hpp"
#include "backprop/train.hpp"
