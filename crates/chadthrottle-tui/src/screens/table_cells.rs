//! A process row of the table, shared by the process table and the grouped table: the
//! text of each column, the limit that governs a process (its own, or its rule's), and
//! the row's styles (limit colour, dimmed exits, the selection).

use crate::sort::Column;
use crate::theme::Theme;
use chadthrottle_core::rate::{format_bytes, format_rate};
use chadthrottle_core::usage::{LimitRates, ProcessUsage};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row};

pub fn cell(process: &ProcessUsage, column: Column) -> String {
    match column {
        Column::Pid => process.pid.to_string(),
        Column::Name if process.exited => format!("{} (exited)", process.name),
        Column::Name => process.name.clone(),
        Column::DownRate => format_rate(process.rx_rate),
        Column::UpRate => format_rate(process.tx_rate),
        Column::DownTotal => format_bytes(process.rx_bytes),
        Column::UpTotal => format_bytes(process.tx_bytes),
        Column::Limit => process.limit.map(|l| l.to_string()).unwrap_or_default(),
    }
}

/// The limit column of a process the rule `rule` governs (its name and rates), `width`
/// cells wide: the rule's rates, then its name in brackets, so that it cannot be read as
/// a PID limit (which `r` would lift); a name too long for the column is cut with `…`
/// inside the brackets, which stay. A PID limit outranks every rule, so it wins when
/// both are known.
pub fn limit_cell(
    process: &ProcessUsage,
    rule: Option<&(String, LimitRates)>,
    width: u16,
) -> String {
    let (None, Some((name, limit))) = (process.limit, rule) else {
        return cell(process, Column::Limit);
    };
    let rates = limit.to_string();
    let room = usize::from(width).saturating_sub(Span::raw(rates.as_str()).width() + 3);
    let name = if name.chars().count() <= room {
        name.clone()
    } else {
        let kept: String = name.chars().take(room.saturating_sub(1)).collect();
        format!("{kept}…")
    };
    format!("{rates} [{name}]")
}

/// A table row of `cells` in `style`, the limit in its colour, dimmed once `exited`,
/// reversed when `selected`.
pub fn row<'a>(
    cells: impl Iterator<Item = (Column, String)>,
    style: Style,
    exited: bool,
    selected: bool,
    theme: &Theme,
) -> Row<'a> {
    let cells = cells.map(|(column, text)| match column {
        Column::Limit => Cell::from(Span::styled(text, theme.limit())),
        _ => Cell::from(text),
    });
    let mut style = style;
    if exited {
        style = style.patch(theme.fading());
    }
    if selected {
        style = style.patch(theme.selected());
    }
    Row::new(cells).style(style)
}
