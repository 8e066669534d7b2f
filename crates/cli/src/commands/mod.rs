//! One module per subcommand.

pub(crate) mod configs;
pub(crate) mod consume;
pub(crate) mod group_offsets;
pub(crate) mod groups;
pub(crate) mod lag;
pub(crate) mod metadata;
pub(crate) mod perf;
pub(crate) mod perf_consume;
pub(crate) mod produce;
pub(crate) mod record_format;
pub(crate) mod schema;
pub(crate) mod topic;
pub(crate) mod topic_args;
