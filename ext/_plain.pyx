# cython: language_level=3
"""medsettle._plain: the validated path's quick route in C, for the core's single-bill fast path.

Twin of :func:`medsettle.engine.plainbill.resolve_plain` (the route the reference engine takes): a bill
already checked by pydantic-core against plainbill's ``_PlainBill`` TypedDict is resolved to the fast
path's arguments (person row, day number, med type, tier, treatment region, account flag, admission key,
forwarded cash) and its lines are written straight into the Session's input buffers, with the amounts
read from their text as int units: no Decimal, no per-line Python objects but the feedetl_sn tuple.

Like the Python route it only ever says yes to a bill the Bill model accepts. Anything it does not take
in full (non-ASCII digits, an amount past its bound, an unknown person or item, totals that disagree, a
date that is not a calendar date, ...) makes :meth:`PlainRoute.resolve` return None, and the caller
settles the bill the model's way, which settles it or raises the canonical error naming the field.
tests/test_plain_bills.py settles random bills, good and bad, both ways on both engines.
"""

from cpython.datetime cimport datetime_new, import_datetime
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int32_t, int64_t, uint8_t

import_datetime()

cdef extern from *:
    """
    /* tuple.__new__(cls, items) for a tuple subclass without __init__ or slots (a NamedTuple), minus the
       call machinery: the route makes one per bill. */
    static PyObject *ms_tuple_as(PyObject *cls, PyObject *items) {
        Py_ssize_t i, n = PyTuple_GET_SIZE(items);
        PyObject *obj = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, n);
        if (obj == NULL) return NULL;
        for (i = 0; i < n; i++) {
            PyObject *item = PyTuple_GET_ITEM(items, i);
            Py_INCREF(item);
            PyTuple_SET_ITEM(obj, i, item);
        }
        return obj;
    }
    """
    object ms_tuple_as(object cls, tuple items)

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object text)
    const char* PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)

from _bounds cimport *  # docs/settlement.md's bounds (ext/bounds.h, as medsettle/engine/bounds.py)

cdef enum:
    NO_VALUE = -1
    NOT_PLAIN = -2                    # an amount the route does not take: the model decides

BOUNDS = bounds_report()  # checked against medsettle.engine.bounds.COMPILED_BOUNDS

# "1" .. "1000": the default feedetl_sn of each line, made once.
cdef tuple LINE_NUMBERS = tuple(str(j + 1) for j in range(MAX_LINES))


cdef int64_t units_of(object text, int places) noexcept:
    """A plain amount's text ("12.5": 1-12 ASCII digits, then at most ``places`` decimals) in int units of
    10^-places, or NOT_PLAIN for anything else (pydantic's pattern has already refused most of it; this
    also refuses non-ASCII digits, which the pattern's \\d lets through)."""
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return NOT_PLAIN
    cdef const char* s = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, whole_digits, frac_digits = 0
    cdef int64_t value = 0
    while i < n and c'0' <= s[i] <= c'9':
        value = value * 10 + (s[i] - c'0')
        i += 1
    whole_digits = i
    if whole_digits < 1 or whole_digits > 12:
        return NOT_PLAIN
    if i < n:
        if s[i] != c'.':
            return NOT_PLAIN
        i += 1
        while i < n and c'0' <= s[i] <= c'9' and frac_digits < places:
            value = value * 10 + (s[i] - c'0')
            i += 1
            frac_digits += 1
        if frac_digits == 0 or i != n:
            return NOT_PLAIN
    while frac_digits < places:
        value *= 10
        frac_digits += 1
    return value


cdef inline int two_digits(const char* s) noexcept:
    if not (c'0' <= s[0] <= c'9' and c'0' <= s[1] <= c'9'):
        return -1
    return (s[0] - c'0') * 10 + (s[1] - c'0')


cdef inline bint is_leap(int y) noexcept:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


cdef int days_in_month(int y, int m) noexcept:
    if m == 2:
        return 29 if is_leap(y) else 28
    return 30 if m in (4, 6, 9, 11) else 31


cdef bint parse_date(object text, int* year, int* month, int* day, int* hms) noexcept:
    """The date of "yyyy-MM-dd" or "yyyy-MM-dd HH:mm:ss" (ASCII, a real calendar date and clock time, as
    datetime.fromisoformat requires), or False. ``hms`` gets the time of day (hour, minute, second; all 0
    for a date alone): the settlement answers it as its setl_time."""
    if type(text) is not str or not PyUnicode_IS_ASCII(text):
        return False
    cdef const char* s = PyUnicode_DATA(text)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    if n != 10 and n != 19:
        return False
    cdef int hi = two_digits(s), lo = two_digits(s + 2), hour, minute, second
    if hi < 0 or lo < 0 or s[4] != c'-' or s[7] != c'-':
        return False
    year[0] = hi * 100 + lo
    month[0] = two_digits(s + 5)
    day[0] = two_digits(s + 8)
    if not (1 <= month[0] <= 12 and 1 <= day[0] <= days_in_month(year[0], month[0])):
        return False
    hms[0] = hms[1] = hms[2] = 0
    if n == 19:
        if s[10] != c' ' or s[13] != c':' or s[16] != c':':
            return False
        hour, minute, second = two_digits(s + 11), two_digits(s + 14), two_digits(s + 17)
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
            return False
        hms[0], hms[1], hms[2] = hour, minute, second
    return True


cdef int32_t day_number(int y, int m, int d) noexcept:
    """Days since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil)."""
    if m <= 2:
        y -= 1
    cdef int era = y // 400
    cdef int yoe = y - era * 400
    cdef int doy = (153 * (m + 9 if m <= 2 else m - 3) + 2) // 5 + d - 1
    cdef int doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef class PlainRoute:
    """Resolves validated plain bills for one Session: reads the population, policy and admission keys it
    was made with, and writes lines into the Session's input buffers (item_in, pric_in, cnt_in, appr_in).

    Made with the fast path, and made again with it after an enrolment (the population's arrays may move).
    """

    cdef dict person_index, region_index, med_type_index, tier_index, lookups
    cdef object compiled, admission_key, bill_head
    cdef int last_region
    cdef int32_t last_day
    cdef dict last_lookup
    cdef const uint8_t[::1] attrs_bytes      # the population's ATTR_DTYPE records, 32 bytes each
    cdef Py_ssize_t attrs_size, region_offset, n_persons
    cdef int32_t[::1] items
    cdef int64_t[::1] prices, cnts
    cdef uint8_t[::1] apprs

    def __init__(self, compiled, population, admissions, session, *, med_type_index, tier_index, bill_head):
        import numpy as np
        self.compiled = compiled
        self.admission_key = admissions.key
        self.person_index = population.index
        self.region_index = {code: i for i, code in enumerate(compiled.region_codes)}
        self.med_type_index = dict(med_type_index)
        self.tier_index = dict(tier_index)
        if not (isinstance(bill_head, type) and issubclass(bill_head, tuple)
                and bill_head.__basicsize__ == tuple.__basicsize__ and len(bill_head._fields) == 6):
            raise TypeError("bill_head must be a NamedTuple class of 6 fields (its instances are made in C)")
        self.bill_head = bill_head
        self.lookups = {}
        self.last_region = -1
        self.attrs_bytes = population.attrs.view(np.uint8)
        self.attrs_size = population.attrs.dtype.itemsize
        self.n_persons = len(population.attrs)
        self.region_offset = population.attrs.dtype.fields["region"][1]
        self.items = session.item_in
        self.prices = session.pric_in
        self.cnts = session.cnt_in
        self.apprs = session.appr_in

    cdef dict lookup(self, int region, int32_t day):
        """The treatment region's catalogue in force on ``day`` ({code: item}), cached per region and day
        (and the last one at hand: a stream of bills mostly keeps to one region and day)."""
        if region == self.last_region and day == self.last_day:
            return self.last_lookup
        key = (region, day)
        found = self.lookups.get(key)
        if found is None:
            found = self.compiled.item_lookup(region, day) or {}
            self.lookups[key] = found
        self.last_region, self.last_day, self.last_lookup = region, day, <dict>found
        return <dict>found

    def resolve(self, dict bill):
        """``((person, day, med_type, tier, treat_region, acct_flag, adm, saf_cash, n_lines), head)`` with the
        lines in the Session's buffers, or None: take the model way."""
        cdef int y, m, d, region, acct_flag
        cdef int hms[3]
        cdef int64_t pric, cnt, fee, medfee = 0, saf_cash
        cdef Py_ssize_t j, n, p
        cdef int32_t day
        cdef const uint8_t* record
        if not parse_date(bill["setl_time"], &y, &m, &d, hms) or not MIN_YEAR <= y <= MAX_YEAR:
            return None
        psn_no = bill["psn_no"]
        row = self.person_index.get(psn_no)
        if row is None:
            return None
        p = row
        if p >= self.n_persons:  # enrolled after this route was made: its attrs array is stale
            return None
        treatment = bill.get("mdtrtarea_admvs")
        if treatment is None:
            record = &self.attrs_bytes[p * self.attrs_size + self.region_offset]
            region = (<const short*> record)[0]
        else:
            found = self.region_index.get(treatment)
            if found is None:
                return None
            region = found
        day = day_number(y, m, d)
        lookup = self.lookup(region, day)
        lines = <list?> bill["feedetail"]
        n = len(lines)
        if n < 1 or n > MAX_LINES:
            return None
        sns = PyTuple_New(n)
        for j in range(n):
            line = <dict?> lines[j]
            found = lookup.get(line["med_list_codg"])
            if found is None:
                return None
            pric = units_of(line["pric"], 4)
            cnt = units_of(line["cnt"], 4)
            if not (0 <= pric <= MAX_PRIC_UNITS and 0 < cnt <= MAX_CNT_UNITS):
                return None
            fee = (pric * cnt + LINE_DIVISOR // 2) // LINE_DIVISOR  # line_fee, half up, for pric, cnt >= 0
            caller_text = line.get("det_item_fee_sumamt")
            if caller_text is not None and units_of(caller_text, 2) != fee:
                return None
            medfee += fee
            self.items[j] = found
            self.prices[j] = pric
            self.cnts[j] = cnt
            flag = line.get("hosp_appr_flag")
            self.apprs[j] = 1 if flag is True or flag == "1" else 0
            sn = line.get("feedetl_sn") or LINE_NUMBERS[j]
            Py_INCREF(sn)  # PyTuple_SET_ITEM steals a reference
            PyTuple_SET_ITEM(sns, j, sn)
        if medfee > MAX_MEDFEE:
            return None
        caller_text = bill.get("medfee_sumamt")
        if caller_text is not None and units_of(caller_text, 2) != medfee:
            return None
        flag = bill.get("acct_used_flag")
        acct_flag = 0 if flag is False or flag == "0" else 1  # the model's default is 1
        cash_text = bill.get("saf_cash_amt")
        saf_cash = NO_VALUE if cash_text is None else units_of(cash_text, 2)
        if saf_cash != NO_VALUE and not (0 <= saf_cash <= MAX_MEDFEE and not acct_flag):
            return None
        med_type = bill["med_type"]
        mdtrt_id = bill["mdtrt_id"]
        args = (p, day, self.med_type_index[med_type], self.tier_index[bill["hosp_lv"]], region, acct_flag,
                self.admission_key(mdtrt_id), saf_cash, n)
        # BillHead's fields in its order, made as tuple.__new__ does (its NamedTuple __new__ is Python code).
        head = ms_tuple_as(self.bill_head, (bill.get("bill_id", ""), psn_no, mdtrt_id, med_type,
                                            datetime_new(y, m, d, hms[0], hms[1], hms[2], 0, None), sns))
        return args, head
