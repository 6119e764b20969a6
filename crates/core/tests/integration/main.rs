//! The core library against what is outside the code: parsers fed arbitrary input, and the
//! Terraform configuration read back and compared with the lists the code declares. One test
//! binary, one module per concern.

mod parsers_never_panic;
mod terraform_consistency;
