//! `task-create`: one task from flags, or a batch from `--from`.

use super::Stdin;
use crate::batch;
use crate::cli::{CreateArgs, CreateFormat};
use crate::error::{Error, Result};
use crate::model::{BlockerRef, NewTask};
use crate::output;
use crate::store::Filter;
use std::io::Write;

pub fn run(a: CreateArgs, out: &mut dyn Write) -> Result<u8> {
    let mut stdin = Stdin::default();
    // Parse all input before the store is touched: bad input creates nothing.
    let tasks = match &a.from {
        Some(from) => {
            let single = [
                ("--description", a.description.is_some()),
                ("--active-form", a.active_form.is_some()),
                ("--blocked-by", !a.blocked_by.is_empty()),
                ("--meta", !a.metadata.is_empty()),
                ("--owner", a.owner.is_some()),
            ];
            if let Some((flag, _)) = single.iter().find(|(_, given)| *given) {
                return Err(Error::usage(format!(
                    "{flag} sets a field of one task; with --from, put it in the batch records"
                )));
            }
            let bytes = if from == "-" {
                stdin.take_bytes("--from -")?
            } else {
                std::fs::read(from).map_err(|e| Error::usage(format!("cannot read {from}: {e}")))?
            };
            batch::parse(&bytes, a.csv || from.ends_with(".csv"))?
        }
        None => {
            if a.csv {
                // clap's `requires = "from"` lets it through when a SUBJECT is given.
                return Err(Error::usage("--csv goes with --from FILE"));
            }
            let Some(subject) = a.subject else {
                return Err(Error::usage(
                    "a subject is required (or --from FILE to create a batch)",
                ));
            };
            let mut metadata = serde_json::Map::new();
            for (k, v) in a.metadata {
                if let Some(v) = v {
                    metadata.insert(k, v);
                }
            }
            vec![NewTask {
                key: None,
                subject,
                description: stdin
                    .text(a.description, "--description -")?
                    .unwrap_or_default(),
                active_form: a.active_form,
                blocked_by: a.blocked_by.into_iter().map(BlockerRef::Id).collect(),
                priority: a.priority,
                metadata,
                owner: a.owner,
                max_attempts: a.max_attempts,
                origin: String::new(),
            }]
        }
    };
    let mut store = a.store.open(crate::store::Access::Write)?;
    let ids = store.create(&a.store.list, &tasks)?;
    if a.format == CreateFormat::Ids {
        output::write_ids(out, ids)?;
        return Ok(0);
    }
    let created = store.tasks(
        &a.store.list,
        &Filter {
            ids,
            ..Filter::default()
        },
    )?;
    match a.format {
        CreateFormat::Json => output::write_json(out, &created)?,
        _ => output::write_jsonl(out, &created)?,
    }
    Ok(0)
}
