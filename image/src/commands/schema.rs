//! `hearth schema`: print the config format's JSON schema (pretty) to stdout, for
//! editors and for tools that generate configs.

use std::path::Path;
use std::process::ExitCode;

/// Prints the schema. `_path` is unused: the schema does not depend on a config; the
/// parameter keeps the signature uniform with `check`.
pub fn run(_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let schema = hearth_config::json_schema();
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
