// Blocking I/O with deadlines on Boost.Beast: Beast's stream timeouts apply only to
// asynchronous operations, so each blocking call starts one and runs the io_context until
// it completes or its timer cancels it. Not thread-safe (one io_context per caller).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>

namespace tw::net {

// Calls `start(handler)`, which must start one asynchronous operation on `ioc` with
// `handler` as its completion handler, and waits for it; returns its error code
// (boost::beast::error::timeout when the stream's expiry passed first).
template <typename Start>
boost::beast::error_code RunToCompletion(boost::asio::io_context& ioc, Start&& start) {
  boost::beast::error_code result = boost::asio::error::operation_aborted;
  start([&result](boost::beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

}  // namespace tw::net
