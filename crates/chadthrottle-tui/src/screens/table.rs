//! The process table: one row per process with its rates, totals and limit (its own, or
//! the rule's that governs it, named); the sort column marked in the header, the
//! selection reversed, exited processes dimmed. Grouped by application, its rows come
//! from `grouped_table`.

use super::grouped_table;
use super::table_cells::{cell, limit_cell, row};
use crate::app::{App, process_ref};
use crate::layout::column_widths;
use crate::sort::Column;
use crate::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

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
                let rule = app.membership.rules.get(&process_ref(p));
                let cells = widths.iter().map(|&(c, width)| match c {
                    Column::Limit => (c, limit_cell(p, rule, width)),
                    _ => (c, cell(p, c)),
                });
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
