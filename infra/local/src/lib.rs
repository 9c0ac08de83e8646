//! The local stack: everything that lets the same handler code run on a laptop against real
//! protocol peers — an AWS emulator ([`moto`]) provisioned from `infra/template.yaml`
//! ([`template`], [`provision`]), the Lambda glue around the functions ([`runner`],
//! [`functions`], [`stack`]) and a Meta Graph API sandbox ([`sandbox`]); between the stack and
//! the emulator, a pass-through that keeps DynamoDB's atomic conditional writes and, for
//! tests, fails AWS in its own ways on demand ([`aws_faults`]).

pub mod aws_faults;
pub mod aws_requests;
pub mod bench;
pub mod demo;
pub mod environment;
pub mod functions;
pub mod index_writes;
pub mod moto;
pub mod provision;
pub mod runner;
pub mod runtime_api;
pub mod sandbox;
pub mod serve;
pub mod stack;
pub mod template;
