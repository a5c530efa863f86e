//! The backends popup: each way of limiting, the directions it covers, and whether it
//! works here or why not; then what this kernel makes the datapath do without.

use crate::app::App;
use crate::layout::popup;
use crate::theme::Theme;
use chadthrottle_core::backend::Availability;
use ratatui::Frame;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let mut lines = Vec::new();
    if app.backends.is_empty() {
        lines.push(Line::from("checking…"));
    }
    for (backend, availability) in &app.backends {
        let directions = match (backend.directions.up, backend.directions.down) {
            (true, true) => "up+down",
            (true, false) => "up",
            _ => "down",
        };
        let (state, style) = match availability {
            Availability::Available => ("available".to_owned(), Style::new()),
            Availability::Unavailable(reason) => (format!("unavailable: {reason}"), theme.error()),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{:<10}", backend.name), theme.header()),
            Span::raw(format!(
                " priority {:<3} {directions:<8} ",
                backend.priority
            )),
            Span::styled(state, style),
        ]));
        lines.push(Line::from(format!("           {}", backend.summary)));
    }
    for text in app.degraded.describe().lines() {
        lines.push(Line::from(text.to_owned()));
    }
    // wrapped lines take more rows: count them at the popup's inner width
    let inner_width = 88usize
        .min(usize::from(frame.area().width.saturating_sub(2)))
        .max(1);
    let rows: usize = lines
        .iter()
        .map(|line| line.width().max(1).div_ceil(inner_width))
        .sum();
    let area = popup(
        frame.area(),
        90,
        u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(2),
    );
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Backends ")),
        area,
    );
}
