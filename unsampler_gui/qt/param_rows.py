"""One form row per run parameter, made from its ``core.params.Param``: the widget follows the field's
type, range and choices (a combo for a registry, a spin box for a range, a check box for a switch),
and its tool tips are the field's help.

A row shows a value and reads it back; ``show`` also refreshes what depends on the family (the
prediction choices of its sampling kind, whether it has a shift, what an empty override stands for).
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from ..core.families import Family
from ..core.params import Param
from .wheel_guard import GUARDED, guard_wheel


class ParamRow:
    """A widget for one parameter. ``label`` is the form's row label ("" for a check box)."""

    def __init__(self, param: Param, widget: QWidget):
        self.param = param
        self.widget = widget
        widget.setToolTip(param.help)
        widget.setObjectName(f"param_{param.name}")
        if isinstance(widget, GUARDED):
            guard_wheel(widget)  # the wheel scrolls the form; it changes a value only with focus

    @property
    def label(self) -> str:
        return self.param.label

    def connect(self, slot) -> None:
        raise NotImplementedError

    def value(self, family: Optional[Family]):
        """The value shown; None for an optional parameter that does not apply to the family."""
        if self.param.applies is not None and family is not None and not self.param.applies(family):
            return None
        return self._get()

    def show(self, value, family: Optional[Family]) -> None:
        """Show ``value`` (None: the family's own value, for an optional parameter)."""
        p = self.param
        self._refresh(family)
        if p.applies is not None and family is not None:
            self.widget.setEnabled(p.applies(family))
        if value is None and p.fallback is not None and family is not None:
            value = p.fallback(family)
        if value is not None:
            self._set(value)

    def _refresh(self, family: Optional[Family]) -> None:
        pass

    def _get(self):
        raise NotImplementedError

    def _set(self, value) -> None:
        raise NotImplementedError


class CheckRow(ParamRow):
    def __init__(self, param: Param):
        super().__init__(param, QCheckBox(param.label))

    @property
    def label(self) -> str:
        return ""

    def connect(self, slot) -> None:
        self.widget.toggled.connect(slot)

    def _get(self):
        return self.widget.isChecked()

    def _set(self, value) -> None:
        self.widget.setChecked(bool(value))


class ChoiceRow(ParamRow):
    """A combo box over a registry (values as item data, labels and per-choice tips from the ``Param``)."""

    def __init__(self, param: Param):
        super().__init__(param, QComboBox())
        # as wide as the form gives it, not as its longest name: the panel fits a small screen (the list shows all)
        self.widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.widget.setMinimumContentsLength(10)
        self._items: tuple = ()
        self._fill(param.options())

    def connect(self, slot) -> None:
        self.widget.currentIndexChanged.connect(slot)

    def refill(self) -> None:
        """Read the registry again (a family was added); the current value stays selected."""
        self._fill(self.param.options())

    def _fill(self, values: tuple) -> None:
        if values == self._items:
            return
        p, combo = self.param, self.widget
        prev = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for v in values:
            combo.addItem(p.label_of(v), v)
            i = combo.count() - 1
            if p.choice_help is not None:
                combo.setItemData(i, p.choice_help(v), Qt.ItemDataRole.ToolTipRole)
            if p.choice_available is not None and not p.choice_available(v):
                item = combo.model().item(i)
                item.setEnabled(False)
                item.setToolTip(f"{p.label_of(v)} is not available here")
        self._items = tuple(values)
        combo.setCurrentIndex(max(0, combo.findData(prev)))
        combo.blockSignals(False)

    def _refresh(self, family: Optional[Family]) -> None:
        if self.param.choices_for is not None and family is not None:
            self._fill(tuple(self.param.choices_for(family)))

    def _get(self):
        return self.widget.currentData()

    def _set(self, value) -> None:
        i = self.widget.findData(value)
        if i >= 0 and self.widget.model().item(i).isEnabled():
            self.widget.setCurrentIndex(i)


class IntRow(ParamRow):
    def __init__(self, param: Param):
        s = QSpinBox()
        lo, hi = param.range or (-2 ** 31, 2 ** 31 - 1)
        s.setRange(int(lo), int(hi))
        s.setSingleStep(max(1, int(param.step)))
        s.setKeyboardTracking(False)
        s.setAccelerated(True)
        super().__init__(param, s)
        if param.default is not None:
            s.setValue(int(param.default))

    def connect(self, slot) -> None:
        self.widget.valueChanged.connect(slot)

    def _get(self):
        return self.widget.value()

    def _set(self, value) -> None:
        self.widget.setValue(int(value))


class FloatRow(ParamRow):
    def __init__(self, param: Param):
        s = QDoubleSpinBox()
        lo, hi = param.range or (-1e9, 1e9)
        s.setDecimals(param.decimals or 3)
        s.setRange(float(lo), float(hi))
        s.setSingleStep(float(param.step))
        s.setKeyboardTracking(False)
        super().__init__(param, s)
        if param.default is not None:
            s.setValue(float(param.default))

    def connect(self, slot) -> None:
        self.widget.valueChanged.connect(slot)

    def _get(self):
        return self.widget.value()

    def _set(self, value) -> None:
        self.widget.setValue(float(value))


class TextRow(ParamRow):
    def __init__(self, param: Param):
        super().__init__(param, QLineEdit(param.default or ""))

    def connect(self, slot) -> None:
        self.widget.editingFinished.connect(slot)

    def _get(self):
        return self.widget.text()

    def _set(self, value) -> None:
        self.widget.setText(str(value))


def make_row(param: Param) -> ParamRow:
    """The row for a parameter, chosen by what the ``Param`` says it is."""
    if param.type is bool:
        return CheckRow(param)
    if param.choices is not None or param.choices_for is not None:
        return ChoiceRow(param)
    if param.type is int:
        return IntRow(param)
    if param.type is float:
        return FloatRow(param)
    return TextRow(param)
