"""The window's everyday conveniences (issue 15): the Edit menu (undo/redo of the form, reset to the node's
defaults, copy the sigmas), File > Recent files and the files restored on start, Help > Keyboard shortcuts and
Show log file, and shortcuts that work wherever the focus is.

``install(win, file_menu, help_menu)`` adds them to a ``MainWindow``; the window keeps the returned object.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from PySide6.QtCore import QEvent, QObject, Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QAbstractButton, QAbstractItemView, QComboBox, QGroupBox, QDialog, QDialogButtonBox, QHeaderView, QLabel, QMenu,
                               QMessageBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..core import UnsamplerError
from ..core import params as run_params
from ..core.exports import sigmas_for_clipboard
from . import errors
from .undo import FormHistory
from .viewer_tools import KEYS as VIEWER_KEYS

log = logging.getLogger("unsampler")

#: Keys that text fields keep for themselves (their own undo, copy, paste, select all).
TEXT_KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo, QKeySequence.StandardKey.Copy,
             QKeySequence.StandardKey.Paste, QKeySequence.StandardKey.Cut, QKeySequence.StandardKey.SelectAll)


def text_keys() -> list:
    """The key sequences of ``TEXT_KEYS`` on this platform (they need the QGuiApplication)."""
    return [seq for k in TEXT_KEYS for seq in QKeySequence.keyBindings(k)]
#: Keys of the grid and the viewer, listed in Help > Keyboard shortcuts.
VIEW_KEYS = (("Left, Right, Up, Down", "Previous or next frame (grid and viewer)"),
             ("Page Up, Page Down", "A twentieth of the run back or forward"),
             ("Home, End", "The first or last frame")) + VIEWER_KEYS


def install(win, file_menu: QMenu, help_menu: QMenu) -> "Conveniences":
    return Conveniences(win, file_menu, help_menu)


class Conveniences(QObject):
    def __init__(self, win, file_menu: QMenu, help_menu: QMenu):
        super().__init__(win)
        self.win = win
        panel = win.panel
        self.history = FormHistory(panel.run_params, lambda p: panel.set_params(p, family=True), self)
        panel.changed.connect(self.history.record)
        self._build_edit_menu()
        self._build_recent(file_menu)
        self.play_action = QAction("&Play / pause", win)
        self.play_action.setShortcut(QKeySequence(Qt.Key.Key_Space))
        self.play_action.setStatusTip("Play the frames in the viewer (Space, wherever the focus is)")
        self.play_action.triggered.connect(lambda: win.viewer.play_button.toggle())
        win.addAction(self.play_action)
        self.shortcuts_action = self._add(help_menu, "&Keyboard shortcuts", self.show_shortcuts,
                                          QKeySequence.StandardKey.HelpContents)
        help_menu.insertAction(help_menu.actions()[0], self.shortcuts_action)
        panel.latentChanged.connect(self._latent_opened)
        panel.modelChanged.connect(self._model_changed)
        panel.changed.connect(self._model_changed)
        self._watched = []
        self._text_keys = text_keys()
        self.watch_focus_widgets()

    def _add(self, menu, text, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self.win)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    # -- Edit ---------------------------------------------------------------------------------------
    def _build_edit_menu(self) -> None:
        mb = self.win.menuBar()
        e = QMenu("&Edit", mb)
        after_file = mb.actions()[1] if len(mb.actions()) > 1 else None
        mb.insertMenu(after_file, e) if after_file is not None else mb.addMenu(e)
        self.edit_menu = e
        self.undo_action = self._add(e, "&Undo", self.history.undo, QKeySequence.StandardKey.Undo,
                                     "Undo the last change of the form")
        self.redo_action = self._add(e, "&Redo", self.history.redo, QKeySequence.StandardKey.Redo,
                                     "Redo the change undone")
        e.addSeparator()
        self.reset_action = self._add(e, "Reset to the node's &defaults", self.reset_to_defaults,
                                      tip="The BatchUnsampler node's defaults for every value (the model stays)")
        e.addSeparator()
        self.copy_text_action = self._add(e, "&Copy sigmas (ManualSigmas text)", lambda: self.copy_sigmas(False),
                                          "Ctrl+Shift+C", "The schedule, high to low, as ComfyUI's ManualSigmas takes it")
        self.copy_json_action = self._add(e, "Copy sigmas (&JSON)", lambda: self.copy_sigmas(True),
                                          tip="The schedule, the node's slice and the raw sigmas, as JSON")
        self.history.changed.connect(self._update_undo)
        self._update_undo()

    def _update_undo(self) -> None:
        self.undo_action.setEnabled(self.history.can_undo())
        self.redo_action.setEnabled(self.history.can_redo())

    def reset_to_defaults(self) -> None:
        self.win.panel.set_params(run_params.default(), family=False)
        self.win.show_status("the node's defaults (undo: Ctrl+Z)")

    def copy_sigmas(self, as_json: bool) -> Optional[str]:
        try:
            text = sigmas_for_clipboard(self.win.session.export_source(), as_json=as_json)
        except UnsamplerError as e:
            self.win.show_status(f"cannot copy the sigmas: {e}")
            return None
        QGuiApplication.clipboard().setText(text)
        n = text.count(",") + 1 if not as_json else None
        self.win.show_status("copied the sigmas as JSON" if as_json else
                             f"copied {n} sigmas for ManualSigmas (high to low)")
        return text

    # -- recent files, and the files open last ------------------------------------------------------
    def _build_recent(self, file_menu: QMenu) -> None:
        self.recent_menu = QMenu("Open &recent", file_menu)
        acts = file_menu.actions()
        before = next((a for a in acts if a.isSeparator()), None)
        file_menu.insertMenu(before, self.recent_menu) if before is not None else file_menu.addMenu(self.recent_menu)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()

    def _fill_recent(self) -> None:
        m = self.recent_menu
        m.clear()
        files = self.win.settings.recent_files()
        for i, path in enumerate(files):
            act = m.addAction(f"&{i + 1} {os.path.basename(path)}" if i < 9 else os.path.basename(path))
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _=False, p=path: self.win.open_file(p))
        if not files:
            m.addAction("(none yet)").setEnabled(False)
        else:
            m.addSeparator()
            m.addAction("&Clear the list", self.win.settings.clear_recent)

    def _latent_opened(self, latent) -> None:
        path = None if latent.is_sample else latent.path
        self.win.settings.set_last_file("latent", path or "")
        if path:
            self.win.settings.add_recent(path)

    def _model_changed(self) -> None:
        src = self.win.panel.model_source()
        is_file = bool(src) and os.path.exists(src)
        if is_file and src != self.win.settings.last_file("checkpoint"):
            self.win.settings.add_recent(src)
        self.win.settings.set_last_file("checkpoint", src if is_file else "")

    # -- Help ---------------------------------------------------------------------------------------
    def shortcut_rows(self) -> list:
        """``[(keys, what)]``: every window action that has a shortcut, then the views' own keys."""
        rows, seen = [], set()
        for act in self.win.findChildren(QAction):
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            text = act.text().replace("&", "").rstrip("…").strip()
            if keys and text and (keys, text) not in seen:
                seen.add((keys, text))
                rows.append((keys, text))
        return rows + list(VIEW_KEYS)

    def show_shortcuts(self) -> QDialog:
        dlg = QDialog(self.win)
        dlg.setWindowTitle("Keyboard shortcuts")
        rows = self.shortcut_rows()
        table = QTableWidget(len(rows), 2, dlg)
        table.setHorizontalHeaderLabels(["Keys", "Does"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, (keys, what) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(keys))
            table.setItem(r, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        note = QLabel("The shortcuts work wherever the focus is; text fields keep their own undo, copy and paste.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dlg)
        buttons.rejected.connect(dlg.reject)
        lay = QVBoxLayout(dlg)
        lay.addWidget(table)
        lay.addWidget(note)
        lay.addWidget(buttons)
        dlg.resize(520, 480)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self.shortcuts_dialog = dlg
        return dlg

    def show_log_file(self) -> QMessageBox:
        """The log file's path, with Copy path and Open folder (which needs a file manager)."""
        path = errors.LOG_PATH or ""
        box = QMessageBox(QMessageBox.Icon.Information, "Log file",
                          f"The log file is:\n\n{path}" if path else "No log file is being written.", parent=self.win)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole) if path else None
        folder = box.addButton("Open folder", QMessageBox.ButtonRole.ActionRole) if path else None
        box.addButton(QMessageBox.StandardButton.Close)
        for b in (copy, folder):
            if b is not None:  # these buttons must not close the box
                b.clicked.disconnect()
        if copy is not None:
            copy.clicked.connect(lambda: (QGuiApplication.clipboard().setText(path),
                                          box.setInformativeText("The path is on the clipboard.")))
        if folder is not None:
            def open_folder():
                ok = QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))
                box.setInformativeText("" if ok else "No file manager could be started here: copy the path instead.")
            folder.clicked.connect(open_folder)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.log_box = box
        return box

    # -- shortcuts wherever the focus is ------------------------------------------------------------
    def watch_focus_widgets(self) -> None:
        """Watch the window's focusable widgets for the key check that precedes a shortcut (ShortcutOverride)."""
        for w in self.win.findChildren(QWidget):
            if w.focusPolicy() != Qt.FocusPolicy.NoFocus and w not in self._watched:
                w.installEventFilter(self)
                self._watched.append(w)

    def _forced(self, seq: QKeySequence) -> bool:
        """A window shortcut that a focused spin box or text field must not swallow (Ctrl+E, Ctrl+R...)."""
        if seq in self._text_keys:
            return False
        for act in self.win.findChildren(QAction):
            if act.isEnabled() and any(s == seq for s in act.shortcuts()):
                return True
        return False

    def _keeps_space(self, w) -> bool:
        """Buttons, check boxes, group boxes and lists outside the grid and viewer keep Space (it presses them)."""
        if w is None or self.win.viewer.isAncestorOf(w) or self.win.grid.isAncestorOf(w) or w is self.win.grid:
            return False
        return isinstance(w, (QAbstractButton, QComboBox, QGroupBox, QAbstractItemView))

    def eventFilter(self, obj, event) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride:
            return False
        combo = event.keyCombination()
        if combo.key() == Qt.Key.Key_Space and combo.keyboardModifiers() == Qt.KeyboardModifier.NoModifier:
            if self._keeps_space(obj):
                event.accept()  # the widget gets the key, not the Play shortcut
                return True
            return False
        if combo.keyboardModifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier) \
                and self._forced(QKeySequence(combo)):
            event.ignore()  # not overridden: the window's shortcut runs
            return True
        return False
