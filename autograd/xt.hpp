// The one project header that includes xtensor: a later xtensor (which moved its headers under
// xtensor/containers, xtensor/views, ...) is a change to this file alone.
//
// It also converts between rune::Tensor and xtensor containers, for user code and tests that want
// xtensor's algebra on cold paths. Conversions copy; they never alias a tensor's buffer.
#pragma once

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xstorage.hpp>
#include <xtensor/xtensor.hpp>

#include <cstdint>
#include <vector>

#include "autograd/kernels.hpp"
#include "autograd/tensor.hpp"

namespace rune {

template <class T>
xt::xarray<T> to_xarray(const Tensor& t) {
  if (t.dtype() != detail::dtype_of<T>::value)
    throw std::invalid_argument(std::string("to_xarray: tensor is ") + dtype_name(t.dtype()));
  const std::vector<T> values = t.template to_vector<T>();
  std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
  xt::xarray<T> out = xt::adapt(values, shape);
  return out;
}

template <class T>
Tensor from_xarray(const xt::xarray<T>& a) {
  const xt::xarray<T> c = a;  // a row-major, contiguous copy
  Shape shape(c.shape().begin(), c.shape().end());
  return from_buffer(c.data(), shape);
}

}  // namespace rune
