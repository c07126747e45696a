"""The frame viewer's tools, as tev has them: the value under the cursor (position and every channel's value),
fit-to-window (a button, F, or a double-click on the image), and A/B flipping between the current frame and a
pinned one (P pins, B flips).

``ViewerTools`` attaches to a ``FrameViewer`` and adds its buttons to a row of the viewer's layout; it reads the
frame on screen from the viewer's store (one pixel's values: no numerical work on the GUI thread).
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolButton

from ..core.pictures import format_sigma

#: The viewer's own keys, for Help > Keyboard shortcuts.
KEYS = (("F, double-click", "Fit the frame to the viewer"), ("P", "Pin the current frame as B"),
        ("B", "Flip between the current frame (A) and the pinned one (B)"))


class ViewerTools(QObject):
    def __init__(self, viewer, row) -> None:
        super().__init__(viewer)
        self.viewer = viewer
        self._pinned: Optional[int] = None
        self._a: Optional[int] = None  # the frame flipped away from, while B is shown
        self.fit_button = QToolButton(viewer)
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the frame to the viewer (F, or double-click the image)")
        self.pin_button = QToolButton(viewer)
        self.pin_button.setText("Pin B")
        self.pin_button.setToolTip("Pin the current frame as B (P), to flip against with A/B")
        self.flip_button = QToolButton(viewer)
        self.flip_button.setText("A/B")
        self.flip_button.setCheckable(True)
        self.flip_button.setEnabled(False)
        self.flip_button.setToolTip("Flip between the current frame (A) and the pinned frame (B) (B)")
        self.readout = QLabel(viewer)
        self.readout.setTextFormat(Qt.TextFormat.PlainText)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.readout.setToolTip("The latent's values under the cursor: position (x, y) and each channel")
        for w in (self.fit_button, self.pin_button, self.flip_button):
            row.addWidget(w)
        self.fit_button.clicked.connect(self.fit)
        self.pin_button.clicked.connect(self.pin)
        self.flip_button.clicked.connect(lambda _=False: self.flip())
        for key, slot in (("F", self.fit), ("P", self.pin), ("B", self.flip)):
            sc = QShortcut(QKeySequence(key), viewer, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)
        scene = viewer.image_view.scene()
        scene.sigMouseMoved.connect(self._hover)
        scene.sigMouseClicked.connect(self._clicked)
        viewer.store.reset.connect(self._unpin)

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self) -> None:
        """Show the whole frame, as large as the viewer allows (undoes wheel zoom and drag)."""
        if self.viewer.image_item.image is not None:
            self.viewer.view_box.autoRange(padding=0.01)

    def _clicked(self, event) -> None:
        if event.double() and event.button() == Qt.MouseButton.LeftButton:
            self.fit()
            event.accept()

    # -- A/B ----------------------------------------------------------------------------------------
    @property
    def pinned(self) -> Optional[int]:
        return self._pinned

    def pin(self) -> None:
        """Pin the frame on screen as B (pinning it again unpins it)."""
        cur = self.viewer.current_frame()
        if cur < 0:
            return
        if self._pinned == cur and self._a is None:
            self._unpin()
            return
        self._pinned, self._a = cur, None
        self.pin_button.setText(f"Pin B: {self.viewer.store.position(cur)}")
        self.flip_button.setEnabled(True)
        self.flip_button.setChecked(False)

    def flip(self) -> None:
        """Show B (the pinned frame), or back to A (the frame shown before flipping)."""
        v = self.viewer
        if self._pinned is None or not v.store.has(self._pinned):
            self.flip_button.setChecked(False)
            return
        if self._a is None:
            self._a = v.current_frame()
            v.select_frame(self._pinned)
            self.flip_button.setChecked(True)
        else:
            a, self._a = self._a, None
            v.select_frame(a)
            self.flip_button.setChecked(False)

    def _unpin(self) -> None:
        self._pinned = self._a = None
        self.pin_button.setText("Pin B")
        self.flip_button.setChecked(False)
        self.flip_button.setEnabled(False)

    # -- the value under the cursor -----------------------------------------------------------------
    def value_at(self, col: float, row: float) -> Optional[tuple]:
        """``(x, y, [channel values])`` of the latent on screen at image position (col, row), or None outside."""
        v = self.viewer
        img = v.image_item.image
        key = v.shown
        if img is None or key is None or not v.store.has(key.step):
            return None
        frame = v.store.frame(key.step, key.item)
        if frame.ndim == 4:
            frame = frame[:, min(key.time_index, frame.shape[1] - 1)]
        h, w = frame.shape[-2:]
        ih, iw = img.shape[:2]
        if not (0 <= col < iw and 0 <= row < ih):
            return None
        x, y = int(col * w / iw), int(row * h / ih)
        return x, y, [float(c) for c in frame[:, y, x].tolist()]

    def _hover(self, scene_pos) -> None:
        item = self.viewer.image_item
        if item.image is None:
            return
        p = item.mapFromScene(scene_pos)
        self.show_value(p.x(), p.y())

    def show_value(self, col: float, row: float) -> str:
        found = self.value_at(col, row)
        if found is None:
            text = ""
        else:
            x, y, values = found
            text = f"x {x}  y {y}   " + "  ".join(f"c{i} {format_sigma(c)}" for i, c in enumerate(values[:16]))
            if len(values) > 16:
                text += f"  … ({len(values)} channels)"
        self.readout.setText(text)
        return text
