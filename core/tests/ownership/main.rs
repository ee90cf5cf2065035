//! The ownership rules (`docs/speaker-ownership.md`): properties of the
//! pure decision, and of speakers running it on their own views over a
//! simulated network with delays, loss, partitions and restarts.

mod decision;
mod measure;
mod protocol;
mod sim;
