//! The table's rows grouped by application: an application row — `▸`/`▾` (closed, open),
//! its name, how many processes, their rates and totals added up, its rule's limit — in
//! bold, and under an open one its processes, indented, as the process table shows them
//! (without the rule's limit, which is on the application's row).

use super::table_cells::{cell, row};
use crate::app::App;
use crate::grouping::{Grouping, Line};
use crate::sort::Column;
use crate::theme::Theme;
use chadthrottle_core::application::{Application, KeyKind};
use chadthrottle_core::rate::{format_bytes, format_rate};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::Row;

fn app_cell(application: &Application, open: bool, column: Column) -> String {
    match column {
        Column::Pid => String::new(),
        Column::Name => {
            let arrow = if open { "▾" } else { "▸" };
            let rule = match application.key.kind {
                KeyKind::Rule => "rule ",
                KeyKind::Exe | KeyKind::Name => "",
            };
            let exited = if application.exited { " (exited)" } else { "" };
            format!(
                "{arrow} {rule}{} ({}){exited}",
                application.name, application.process_count
            )
        }
        Column::DownRate => format_rate(application.rx_rate),
        Column::UpRate => format_rate(application.tx_rate),
        Column::DownTotal => format_bytes(application.rx_bytes),
        Column::UpTotal => format_bytes(application.tx_bytes),
        Column::Limit => application.limit.map(|l| l.to_string()).unwrap_or_default(),
    }
}

/// The `visible` lines from the table's scroll offset on.
pub fn rows<'a>(
    app: &App,
    grouping: &Grouping,
    widths: &[(Column, u16)],
    theme: &Theme,
    visible: usize,
) -> Vec<Row<'a>> {
    let selected = app.selected_index();
    grouping
        .lines
        .iter()
        .enumerate()
        .skip(app.offset)
        .take(visible)
        .map(|(at, &line)| {
            let application = grouping.application_at(line);
            let is_selected = selected == Some(at);
            match line {
                Line::App(_) => {
                    let open = grouping.is_expanded(&application.key);
                    let cells = widths
                        .iter()
                        .map(|&(c, _)| (c, app_cell(application, open, c)));
                    let bold = Style::new().add_modifier(Modifier::BOLD);
                    row(cells, bold, application.exited, is_selected, theme)
                }
                Line::Process { .. } => {
                    let Some(p) = grouping.process_at(line) else {
                        return Row::default();
                    };
                    let cells = widths.iter().map(|&(c, _)| {
                        let text = match c {
                            Column::Name => format!("  {}", cell(p, c)),
                            Column::Limit if application.rule.is_some() => String::new(),
                            _ => cell(p, c),
                        };
                        (c, text)
                    });
                    row(cells, Style::new(), p.exited, is_selected, theme)
                }
            }
        })
        .collect()
}
