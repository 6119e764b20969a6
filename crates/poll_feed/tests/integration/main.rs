//! poll_feed against moto and the DMM simulator, the binary driven through the Lambda Runtime
//! API. One test binary, one module per topic, the shared helpers in `common`.

mod common;

mod continuous;
mod deadline;
mod faults;
mod forwarding;
mod reliability;
