//! Broadcasts: an approved template sent to an audience (contacts with tags, or a CSV), now or
//! at a scheduled time. [`spec`] is what a business asks for; [`fanout`] writes the audience
//! as one send job per recipient, resumable at any point; [`report`] tallies what became of
//! every recipient. Pacing at the number's throughput happens where every send passes: the
//! sender (`outbound::pacing`).

pub mod fanout;
pub mod report;
pub mod spec;
