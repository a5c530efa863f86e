//! The throttle dialog as drawn: what it limits (the chosen target marked), then the two
//! rate fields, each with its refusal under it while the text does not parse, over the
//! table. Its state is `dialog`'s.

use crate::dialog::{Field, ThrottleDialog, parse_field};
use crate::layout::popup;
use crate::theme::Theme;
use ratatui::Frame;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

/// A field's two lines: label and text (with a cursor when focused), then its refusal,
/// or `unlimited` when empty.
fn field(label: &str, text: &str, focused: bool, theme: &Theme) -> [Line<'static>; 2] {
    let cursor = if focused { "▏" } else { "" };
    let label_style = if focused {
        theme.header()
    } else {
        Style::new()
    };
    let entry = Line::from(vec![
        Span::styled(format!("{label:>9}: "), label_style),
        Span::raw(format!("{text}{cursor}")),
    ]);
    let under = match parse_field(text) {
        Err(error) => Line::from(Span::styled(format!("  {error}"), theme.error())),
        Ok(_) if text.trim().is_empty() => Line::from("           unlimited"),
        Ok(_) => Line::from(""),
    };
    [entry, under]
}

/// One line per target, the chosen one marked (`←→` move the mark).
fn targets(dialog: &ThrottleDialog, theme: &Theme) -> Vec<Line<'static>> {
    dialog
        .targets
        .iter()
        .enumerate()
        .map(|(at, target)| {
            if at == dialog.chosen {
                Line::from(Span::styled(
                    format!("› {}", target.label()),
                    theme.header(),
                ))
            } else {
                Line::from(format!("  {}", target.label()))
            }
        })
        .collect()
}

pub fn draw(frame: &mut Frame, dialog: &ThrottleDialog, theme: &Theme) {
    let rows = u16::try_from(dialog.targets.len()).unwrap_or(u16::MAX);
    let area = popup(frame.area(), 76, rows.saturating_add(12));
    frame.render_widget(Clear, area);
    let mut lines = targets(dialog, theme);
    lines.push(Line::from(match (dialog.target().rule(), dialog.each) {
        (None, _) => "",
        (Some(_), false) => "  shared: one budget for all its processes (Space: each)",
        (Some(_), true) => "  each: the rate for each of its processes (Space: shared)",
    }));
    lines.extend(field(
        "Download",
        &dialog.download,
        dialog.focus == Field::Download,
        theme,
    ));
    lines.extend(field(
        "Upload",
        &dialog.upload,
        dialog.focus == Field::Upload,
        theme,
    ));
    lines.push(Line::from(""));
    lines.push(Line::from(
        "500K 1.5M 1G (bytes/s)  8mbit (bits/s)  0 blocks  empty: unlimited",
    ));
    let title = format!(" Throttle {} (PID {}) ", dialog.name, dialog.process.pid);
    let paragraph = Paragraph::new(lines)
        .block(Block::default().borders(Borders::ALL).title(title))
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, area);
}
