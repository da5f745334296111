//! `task-create`: one task from flags, or a batch from `--from`.

use super::Stdin;
use crate::batch;
use crate::cli::{CreateArgs, CreateFormat};
use crate::error::{Error, Result};
use crate::model::NewTask;
use crate::model::{Task, TaskId};
use crate::output;
use crate::store::Filter;
use std::collections::HashMap;
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
                ("--key", a.key.is_some()),
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
                key: a.key,
                subject,
                description: stdin
                    .text(a.description, "--description -")?
                    .unwrap_or_default(),
                active_form: a.active_form,
                blocked_by: a.blocked_by.into_iter().map(Into::into).collect(),
                priority: a.priority,
                metadata,
                owner: a.owner,
                max_attempts: a.max_attempts,
                scopes: a.scope,
                verify: a.verify,
                origin: String::new(),
            }]
        }
    };
    let mut store = a.store.open(crate::store::Access::Create)?;
    // One id per record: a record whose key exists stands for the task that has it.
    let ids = store.create(&a.store.list, &tasks, a.on_conflict)?;
    if a.format == CreateFormat::Ids {
        output::write_ids(out, ids)?;
        return Ok(0);
    }
    let mut by_id: HashMap<TaskId, Task> = store
        .tasks(
            &a.store.list,
            &Filter {
                ids: ids.clone(),
                ..Filter::default()
            },
        )?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    // In record order (an existing task may have a lower id than the new ones).
    let shown: Vec<Task> = ids.iter().filter_map(|id| by_id.remove(id)).collect();
    match a.format {
        CreateFormat::Json => output::write_json(out, &shown)?,
        _ => output::write_jsonl(out, &shown)?,
    }
    Ok(0)
}
