//! The process table: one row per process with its rates, totals and limit; the sort
//! column marked in the header, the selection reversed, exited processes dimmed. Grouped
//! by application, its rows come from `grouped_table`.

use super::grouped_table;
use crate::app::{App, process_ref};
use crate::layout::column_widths;
use crate::sort::Column;
use crate::theme::Theme;
use chadthrottle_core::rate::{format_bytes, format_rate};
use chadthrottle_core::usage::ProcessUsage;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

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

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let widths = column_widths(area.width);
    let header = Row::new(widths.iter().map(|&(c, _)| {
        let marker = if c == app.sort && app.frozen.is_none() {
            "▼"
        } else {
            ""
        };
        Cell::from(format!("{}{marker}", c.title()))
    }))
    .style(theme.header());
    let visible = usize::from(area.height.saturating_sub(1));
    let selected = app.selected;
    let rows: Vec<Row> = match &app.grouping {
        Some(grouping) => grouped_table::rows(app, grouping, &widths, theme, visible),
        None => app
            .rows
            .iter()
            .skip(app.offset)
            .take(visible)
            .map(|p| {
                let cells = widths.iter().map(|&(c, _)| (c, cell(p, c)));
                row(
                    cells,
                    Style::new(),
                    p.exited,
                    Some(process_ref(p)) == selected,
                    theme,
                )
            })
            .collect(),
    };
    let table = Table::new(rows, widths.iter().map(|&(_, w)| Constraint::Length(w)))
        .header(header)
        .column_spacing(1);
    frame.render_widget(table, area);
    if app.rows.is_empty() {
        let text = if app.filter.is_empty() {
            "no process has used the network yet"
        } else {
            "no process matches the filter"
        };
        let at = Rect {
            y: area.y + 2.min(area.height.saturating_sub(1)),
            height: 1,
            ..area
        };
        frame.render_widget(Paragraph::new(text).style(theme.fading()).centered(), at);
    }
}
