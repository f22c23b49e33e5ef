# cython: language_level=3
"""medsettle._core: the settlement kernel (docs/settlement.md) over flat arrays, without the GIL.

Twin of medsettle/engine/reference.py: same steps, same order, same rounding; results and state must be
bit-identical. The Python facade (medsettle/engine/core.py) validates every input before calling in;
this module only loops. It never allocates per bill and never touches a Python object inside the loop.
"""

from libc.string cimport memset
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t

cdef extern from *:
    """
    #if defined(__x86_64__)
    #include <emmintrin.h>
    /* Results are written once and read later by someone else: streaming stores skip reading each
       output line into the cache first, which halves the memory traffic of the outputs. */
    #define MS_STORE(p, v) _mm_stream_si64((long long *)(p), (long long)(v))
    #define MS_STORE_FENCE() _mm_sfence()
    #else
    #define MS_STORE(p, v) (*(p) = (v))
    #define MS_STORE_FENCE() ((void)0)
    #endif
    #if defined(__GNUC__)
    #define MS_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
    #define MS_PREFETCH_R(p) __builtin_prefetch((p), 0, 3)
    #else
    #define MS_PREFETCH_W(p) ((void)0)
    #define MS_PREFETCH_R(p) ((void)0)
    #endif
    """
    void MS_PREFETCH_W(const void *p) nogil
    void MS_PREFETCH_R(const void *p) nogil
    void MS_STORE(int64_t *p, int64_t v) nogil
    void MS_STORE_FENCE() nogil

from _bounds cimport *  # docs/settlement.md's bounds (ext/bounds.h)
from _types cimport *  # the records, column indices and codes (ext/_types.pxd)

COLUMN_NAMES = ("status", "group", "ded_kind", "adm_counted", "year", "pool_prop_bp", "medfee_sumamt",
                "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt", "act_pay_dedc",
                "hifp_pay", "hifob_pay", "hifmi_pay", "cvlserv_pay", "maf_pay", "fund_pay_sumamt", "psn_part_amt",
                "acct_pay", "psn_cash_pay", "hosp_part_amt", "balc", "t2_base_add", "prev_adm_id",
                "prev_adm_ded_std", "prev_adm_ded_met", "prev_adm_nsetl")


CANCEL_ROLES = (CANCEL_IN_PROGRESS, CANCEL_PAST, CANCEL_PAST_LAST)  # checked against medsettle.engine.columns
BOUNDS = bounds_report()  # checked against medsettle.engine.bounds.COMPILED_BOUNDS


def layout_sizes():
    """sizeof the C records, so tests can check them against the numpy dtypes."""
    return {"PersonState": sizeof(PersonState), "PersonAttrs": sizeof(PersonAttrs)}


cdef inline int64_t rnd(int64_t num, int64_t den) noexcept nogil:
    """round(num / den) half up, for num >= 0 and den > 0 (unsigned: cheaper division by a constant)."""
    return <int64_t>((<uint64_t>num + <uint64_t>(den // 2)) // <uint64_t>den)


cdef inline int64_t i64max(int64_t a, int64_t b) noexcept nogil:
    return a if a > b else b


cdef inline int64_t i64min(int64_t a, int64_t b) noexcept nogil:
    return a if a < b else b



cdef class CorePolicy:
    """A compiled policy as raw C arrays (see medsettle.policy.compile); keeps the numpy arrays alive."""

    cdef object _keep
    cdef const int32_t* region_rs_start
    cdef const int32_t* region_rs_count
    cdef const int8_t* region_group_basis   # [R, NG]
    cdef const int32_t* rs_from_day
    cdef const int8_t* rs_group_of_mt       # [S, 5]
    cdef const int32_t* rs_deductible       # [S, NG, NS, NP, NT, NO]
    cdef const int32_t* rs_ratio            # [S, NG, NS, NP, NT]
    cdef const int32_t* rs_ceiling          # [S, NG, NS, NP]
    cdef const uint8_t* rs_t2_mask          # [S, NS]
    cdef const int32_t* rs_t2_ratio
    cdef const int32_t* rs_t2_cap
    cdef const int64_t* rs_t2_threshold
    cdef const int32_t* rs_misc             # [S, N_MISC]
    cdef const ItemC* items
    cdef Py_ssize_t n_items

    def __init__(self, compiled):
        import numpy as np
        arrays = {
            "region_rs_start": (np.int32, None), "region_rs_count": (np.int32, None),
            "region_group_basis": (np.int8, (NG,)), "rs_from_day": (np.int32, None),
            "rs_group_of_mt": (np.int8, (5,)), "rs_deductible": (np.int32, (NG, NS, NP, NT, NO)),
            "rs_ratio": (np.int32, (NG, NS, NP, NT)), "rs_ceiling": (np.int32, (NG, NS, NP)),
            "rs_t2_mask": (np.uint8, (NS,)), "rs_t2_ratio": (np.int32, (NS,)), "rs_t2_cap": (np.int32, (NS,)),
            "rs_t2_threshold": (np.int64, (NS,)), "rs_misc": (np.int32, (N_MISC,)),
        }
        keep = {}
        for name, (dtype, tail) in arrays.items():
            a = np.ascontiguousarray(getattr(compiled, name), dtype=dtype)
            if tail is not None and a.shape[1:] != tail:
                raise ValueError("%s has shape %s; the core expects (n,) + %s" % (name, a.shape, tail))
            keep[name] = a
        n_items = len(compiled.item_class)
        item_dtype = np.dtype([("cap", "<i8"), ("selfpay", "<i4", (4,)), ("flags", "u1"), ("pad", "u1", (7,))])
        items = np.zeros(max(n_items, 1), item_dtype)
        if n_items:
            class_b = (np.asarray(compiled.item_class) == CLASS_B)[:, None]
            items["cap"][:n_items] = np.where(np.asarray(compiled.item_cap) >= 0, compiled.item_cap, 1 << 62)
            items["selfpay"][:n_items] = np.where(class_b, compiled.item_selfpay, 0)
            items["flags"][:n_items] = (np.where(np.asarray(compiled.item_class) == CLASS_C, ITEM_ALL_OWNPAY, 0)
                                        | np.where(np.asarray(compiled.item_restricted) != 0, ITEM_RESTRICTED, 0))
        keep["items"] = items
        self._keep = keep
        self.region_rs_start = <const int32_t*> _address(keep["region_rs_start"])
        self.region_rs_count = <const int32_t*> _address(keep["region_rs_count"])
        self.region_group_basis = <const int8_t*> _address(keep["region_group_basis"])
        self.rs_from_day = <const int32_t*> _address(keep["rs_from_day"])
        self.rs_group_of_mt = <const int8_t*> _address(keep["rs_group_of_mt"])
        self.rs_deductible = <const int32_t*> _address(keep["rs_deductible"])
        self.rs_ratio = <const int32_t*> _address(keep["rs_ratio"])
        self.rs_ceiling = <const int32_t*> _address(keep["rs_ceiling"])
        self.rs_t2_mask = <const uint8_t*> _address(keep["rs_t2_mask"])
        self.rs_t2_ratio = <const int32_t*> _address(keep["rs_t2_ratio"])
        self.rs_t2_cap = <const int32_t*> _address(keep["rs_t2_cap"])
        self.rs_t2_threshold = <const int64_t*> _address(keep["rs_t2_threshold"])
        self.rs_misc = <const int32_t*> _address(keep["rs_misc"])
        self.items = <const ItemC*> _address(items)
        self.n_items = n_items
        if items.dtype.itemsize != sizeof(ItemC):
            raise RuntimeError("item record size mismatch")

    cdef inline int ruleset_on(self, int region, int32_t day) noexcept nogil:
        cdef int start = self.region_rs_start[region]
        cdef int s = start + self.region_rs_count[region] - 1
        while s >= start:
            if self.rs_from_day[s] <= day:
                return s
            s -= 1
        return -1


cdef size_t _address(a) except 0:
    """Address of a numpy array's first byte (arrays here are never empty)."""
    if a.size == 0:
        raise ValueError("an empty policy table")
    return <size_t> a.ctypes.data


cdef inline void roll_over(PersonState* st, int year) noexcept nogil:
    st.ded_met[0] = 0; st.ded_met[1] = 0; st.ded_met[2] = 0
    st.pooled_paid[0] = 0; st.pooled_paid[1] = 0; st.pooled_paid[2] = 0
    st.t2_paid = 0
    st.t2_base = 0
    st.maf_paid = 0
    st.adm_count = 0
    st.acc_year = <uint8_t>(year - YEAR_BASE)



cdef inline void price_lines(CorePolicy pol, const PersonAttrs* attrs, Py_ssize_t nb, const int64_t* line_start,
                             const int32_t* item, const int64_t* pric, const int64_t* cnt, const uint8_t* appr,
                             int64_t* line_out, bint full, BillSums* sums) noexcept nogil:
    """Steps 1-5 for every line of ``nb`` consecutive bills: bill k's lines are line_start[k] up to
    line_start[k + 1] (each bill has at least one), its person's attributes ``attrs[k]``, its totals go
    to ``sums[k]``. Treatment region's catalogue, items resolved by the facade.

    Branch-free: one flat loop over the lines (the bill a line belongs to is counted, not looped over,
    so bills of 1 to 8 lines cost no mispredicted loop exits), and every amount is computed and the
    ones that do not apply are masked to 0, so a random mix of classes costs no mispredicted branches
    either. Same results as the reference's if/else."""
    cdef Py_ssize_t j, k = 0
    cdef int64_t next_bill_start = line_start[1]
    cdef int64_t fee, fulamt, overlmt, preselfpay, inscp, p_units, c_units, over_units, mask, all_ownpay
    cdef const ItemC* it
    cdef BillSums* bs
    memset(sums, 0, nb * sizeof(BillSums))
    for j in range(line_start[0], line_start[nb]):
        k += j >= next_bill_start
        next_bill_start = line_start[k + 1]
        it = &pol.items[item[j]]
        p_units = pric[j]
        c_units = cnt[j]
        fee = rnd(p_units * c_units, LINE_DIVISOR)
        over_units = p_units - it.cap
        over_units = over_units if over_units > 0 else 0
        overlmt = rnd(over_units * c_units, LINE_DIVISOR)
        preselfpay = rnd((fee - overlmt) * it.selfpay[attrs[k].psn_type], BP)
        all_ownpay = (it.flags & ITEM_ALL_OWNPAY) | ((it.flags >> 1) & (appr[j] ^ 1))
        mask = -all_ownpay
        fulamt = fee & mask
        overlmt = overlmt & ~mask
        preselfpay = preselfpay & ~mask
        inscp = fee - fulamt - overlmt - preselfpay
        bs = &sums[k]
        bs.medfee += fee
        bs.fulamt += fulamt
        bs.overlmt += overlmt
        bs.preselfpay += preselfpay
        bs.inscp += inscp
        if full:
            MS_STORE(&line_out[j * N_LINE_COLS + L_FEE], fee)
            MS_STORE(&line_out[j * N_LINE_COLS + L_FULAMT], fulamt)
            MS_STORE(&line_out[j * N_LINE_COLS + L_OVERLMT], overlmt)
            MS_STORE(&line_out[j * N_LINE_COLS + L_PRESELFPAY], preselfpay)
            MS_STORE(&line_out[j * N_LINE_COLS + L_INSCP], inscp)


cdef inline int settle_state(CorePolicy pol, const PersonAttrs* a, PersonState* stp, const BillSums* sums,
                             int32_t day, int16_t year, int32_t month, uint8_t mt, uint8_t tier,
                             int16_t treat_region, uint8_t acct_flag, int32_t adm, int64_t saf_cash,
                             Py_ssize_t j0, Py_ssize_t j1, int64_t* row, int64_t* line_out, bint full,
                             bint presettle) noexcept nogil:
    """Steps 6-16 for one bill whose lines ``price_lines`` has priced into ``sums``: eligibility, then the
    split against the person's state; writes its row. A refused bill's row and lines are zeroed (the line
    pass ran before eligibility was known). Returns the bill's status."""
    cdef PersonState scratch  # a presettle works on a copy and leaves the person untouched
    cdef PersonState* st = stp
    cdef int s, g, sch, pt, status = OK
    cdef Py_ssize_t gspt
    cdef Py_ssize_t j
    cdef int64_t medfee = sums.medfee, s_fulamt = sums.fulamt, s_overlmt = sums.overlmt
    cdef int64_t s_preselfpay = sums.preselfpay, s_inscp = sums.inscp
    cdef int64_t standard, met, dedc, ratio, cut, eligible, share, room, hifp, e_over
    cdef int64_t hifob = 0, hifmi = 0, t2_add = 0, room2, selfpaid, excess, maf = 0, fund, hosp = 0
    cdef int64_t psn_part, payable, acct = 0, cash, use_acct
    cdef bint covered_only
    cdef bint per_adm, in_progress
    cdef int32_t wait
    cdef int adm_counted = 0
    cdef int32_t prev_id, prev_std, prev_met
    cdef uint16_t prev_nsetl

    # Step 6: eligibility (same order as the reference).
    if not (a.flags & FLAG_ACTIVE):
        status = PERSON_INACTIVE
    else:
        s = pol.ruleset_on(a.region, day)
        if s < 0:
            status = NO_RULES_IN_FORCE
        else:
            wait = pol.rs_misc[s * N_MISC + M_WAITING] + a.extra_wait
            if a.run_start < 0 or month < a.run_start + wait or a.paid_through < month - 1:
                status = WAITING_PERIOD
    if status == OK:
        if presettle:
            scratch = stp[0]
            st = &scratch
        if st.acc_year != 0 and st.acc_year + YEAR_BASE > year:
            status = YEAR_CLOSED
    if status == OK:
        g = pol.rs_group_of_mt[s * 5 + mt]
        per_adm = pol.region_group_basis[a.region * NG + g] != 0
        in_progress = per_adm and st.adm_nsetl > 0 and st.adm_id == adm
        if per_adm and ((in_progress and st.adm_nsetl >= MAX_ADM_SETTLEMENTS) or
                        (not in_progress and st.acc_year + YEAR_BASE == year and st.adm_count >= MAX_ADMISSIONS)):
            status = ADMISSION_LIMIT
    if status != OK:
        if full:
            for j in range(N_COLS):
                row[j] = 0
            for j in range(j0 * N_LINE_COLS, j1 * N_LINE_COLS):
                MS_STORE(&line_out[j], 0)
        else:
            for j in range(N_NARROW):
                row[j] = 0
        row[0] = status
        return status

    if st.acc_year == 0 or st.acc_year + YEAR_BASE < year:
        roll_over(st, year)
    sch = a.insutype
    pt = a.psn_type

    # Step 7: deductible.
    gspt = (((s * NG + g) * NS + sch) * NP + pt) * NT + tier
    if per_adm and in_progress:
        standard = st.adm_ded_std
        met = st.adm_ded_met
    elif per_adm:
        standard = pol.rs_deductible[gspt * NO + (st.adm_count if st.adm_count < 2 else 2)]
        met = 0
    else:
        standard = pol.rs_deductible[gspt * NO]
        met = st.ded_met[g]
    dedc = i64min(s_inscp, i64max(0, standard - met))

    # Step 8: pooled fund.
    ratio = pol.rs_ratio[gspt]
    if treat_region != a.region and not (a.filing_region == treat_region and a.filing_from <= day
                                         and day <= a.filing_to):
        cut = pol.rs_misc[s * N_MISC + (M_CUT_EMERG if mt == MT_EMERGENCY else M_CUT_OTHER)]
        ratio = i64min(i64max(ratio - cut, 0), BP)
    eligible = s_inscp - dedc
    share = rnd(eligible * ratio, BP)
    room = i64max(0, pol.rs_ceiling[gspt // NT] - st.pooled_paid[g])
    if room == 0:
        hifp = 0
        e_over = eligible
    elif share <= room:
        hifp = share
        e_over = 0
    else:
        hifp = room
        e_over = i64max(0, eligible - rnd(room * BP, ratio))

    # Step 9: second tier.
    if (pol.rs_t2_mask[s * NS + sch] >> g) & 1:
        room2 = i64max(0, pol.rs_t2_cap[s * NS + sch] - st.t2_paid)
        if sch == EMPLOYEE:
            hifob = i64min(rnd(e_over * pol.rs_t2_ratio[s * NS + sch], BP), room2)
        else:
            selfpaid = s_inscp - hifp
            excess = i64max(0, st.t2_base + selfpaid - i64max(pol.rs_t2_threshold[s * NS + sch], st.t2_base))
            hifmi = i64min(rnd(excess * pol.rs_t2_ratio[s * NS + sch], BP), room2)
            t2_add = selfpaid

    # Step 10: medical assistance.
    if a.flags & FLAG_ASSISTANCE:
        maf = i64min(rnd(i64max(0, s_inscp - hifp - hifob - hifmi) * pol.rs_misc[s * N_MISC + M_MAF_RATIO], BP),
                     i64max(0, pol.rs_misc[s * N_MISC + M_MAF_CAP] - st.maf_paid))

    # Steps 11-15.
    fund = hifp + hifob + hifmi + maf
    if saf_cash >= 0:
        hosp = i64max(0, medfee - fund - saf_cash)
    psn_part = medfee - fund - hosp
    # Branch-free (whether the account pays is a coin toss across a batch): payable is masked to 0
    # when it may not pay, and max(0, .) stands for the reference's "covered items only" choice.
    use_acct = acct_flag & (sch == EMPLOYEE) & ((pol.rs_misc[s * N_MISC + M_ACCT_MT_MASK] >> mt) & 1)
    covered_only = pol.rs_misc[s * N_MISC + M_ACCT_COVERED] != 0
    payable = i64max(0, psn_part - ((s_fulamt + s_overlmt) & -(<int64_t>covered_only)))
    acct = i64min(payable, st.balance) & -use_acct
    cash = psn_part - acct

    # Step 16: accumulators.
    prev_id = st.adm_id
    prev_std = st.adm_ded_std
    prev_met = st.adm_ded_met
    prev_nsetl = st.adm_nsetl
    st.balance -= acct
    if per_adm:
        if in_progress:
            st.adm_ded_met += <int32_t>dedc
            st.adm_nsetl += 1
        else:
            st.adm_id = adm
            st.adm_ded_std = <int32_t>standard
            st.adm_ded_met = <int32_t>dedc
            st.adm_nsetl = 1
            st.adm_count += 1
            adm_counted = 1
    else:
        st.ded_met[g] += <int32_t>dedc
    st.pooled_paid[g] += <int32_t>hifp
    st.t2_paid += <int32_t>(hifob + hifmi)
    st.t2_base += t2_add
    st.maf_paid += <int32_t>maf

    if full:
        MS_STORE(&row[C_STATUS], OK)
        MS_STORE(&row[C_GROUP], g)
        MS_STORE(&row[C_DED_KIND], per_adm)
        MS_STORE(&row[C_ADM_COUNTED], adm_counted)
        MS_STORE(&row[C_YEAR], year)
        MS_STORE(&row[C_POOL_PROP], ratio)
        MS_STORE(&row[C_MEDFEE], medfee)
        MS_STORE(&row[C_FULAMT], s_fulamt)
        MS_STORE(&row[C_OVERLMT], s_overlmt)
        MS_STORE(&row[C_PRESELFPAY], s_preselfpay)
        MS_STORE(&row[C_INSCP], s_inscp)
        MS_STORE(&row[C_DEDC], dedc)
        MS_STORE(&row[C_HIFP], hifp)
        MS_STORE(&row[C_HIFOB], hifob)
        MS_STORE(&row[C_HIFMI], hifmi)
        MS_STORE(&row[C_CVLSERV], 0)
        MS_STORE(&row[C_MAF], maf)
        MS_STORE(&row[C_FUND], fund)
        MS_STORE(&row[C_PSN_PART], psn_part)
        MS_STORE(&row[C_ACCT], acct)
        MS_STORE(&row[C_CASH], cash)
        MS_STORE(&row[C_HOSP_PART], hosp)
        MS_STORE(&row[C_BALC], st.balance)
        MS_STORE(&row[C_T2_ADD], t2_add)
        MS_STORE(&row[C_PREV_ADM_ID], prev_id if adm_counted else 0)
        MS_STORE(&row[C_PREV_ADM_STD], prev_std if adm_counted else 0)
        MS_STORE(&row[C_PREV_ADM_MET], prev_met if adm_counted else 0)
        MS_STORE(&row[C_PREV_ADM_NSETL], prev_nsetl if adm_counted else 0)
    else:
        row[NC_STATUS] = OK
        row[NC_MEDFEE] = medfee
        row[NC_FUND] = fund
        row[NC_ACCT] = acct
        row[NC_CASH] = cash
        row[NC_BALC] = st.balance
    return OK


def run(CorePolicy pol, const uint8_t[::1] attrs_bytes, uint8_t[::1] state_bytes,
        const int32_t[::1] person, const int32_t[::1] day, const int16_t[::1] year, const int32_t[::1] month,
        const uint8_t[::1] med_type, const uint8_t[::1] tier, const int16_t[::1] treat_region,
        const uint8_t[::1] acct_flag, const int32_t[::1] adm, const int64_t[::1] saf_cash,
        const int64_t[::1] line_start, const int32_t[::1] item, const int64_t[::1] pric,
        const int64_t[::1] cnt, const uint8_t[::1] appr,
        int64_t[:, ::1] out, int64_t[:, ::1] line_out, bint presettle=False):
    """Settle a validated batch in order. ``line_out`` None narrows the outputs (``out`` has N_NARROW
    columns). Returns the number of bills settled (status 0)."""
    cdef Py_ssize_t n = person.shape[0], i
    cdef bint full = line_out is not None
    cdef Py_ssize_t ncols = N_COLS if full else N_NARROW
    if out.shape[0] != n or out.shape[1] != ncols:
        raise ValueError("out must be (%d, %d)" % (n, ncols))
    if full and (line_out.shape[0] != item.shape[0] or line_out.shape[1] != N_LINE_COLS):
        raise ValueError("line_out must be (%d, %d)" % (item.shape[0], N_LINE_COLS))
    if line_start.shape[0] != n + 1:
        raise ValueError("line_start must have n + 1 entries")
    for i in range(n):  # the line pass counts bills by their first line: each must have one
        if line_start[i + 1] <= line_start[i]:
            raise ValueError("bill %d has no lines (line_start must be strictly increasing)" % i)
    if line_start[0] != 0 or line_start[n] != item.shape[0]:
        raise ValueError("line_start must run from 0 to the number of lines")
    if state_bytes.shape[0] % sizeof(PersonState) or attrs_bytes.shape[0] % sizeof(PersonAttrs):
        raise ValueError("state or attrs buffer is not a whole number of records")
    if state_bytes.shape[0] // sizeof(PersonState) != attrs_bytes.shape[0] // sizeof(PersonAttrs):
        raise ValueError("state and attrs have different numbers of persons")
    cdef const PersonAttrs* attrs_all = <const PersonAttrs*> &attrs_bytes[0] if attrs_bytes.shape[0] else NULL
    cdef PersonState* state_all = <PersonState*> &state_bytes[0] if state_bytes.shape[0] else NULL
    cdef int64_t* out_ptr = &out[0, 0] if n else NULL
    cdef int64_t* line_ptr = &line_out[0, 0] if (full and item.shape[0]) else NULL
    cdef const int32_t* item_ptr = &item[0] if item.shape[0] else NULL
    cdef const int64_t* pric_ptr = &pric[0] if item.shape[0] else NULL
    cdef const int64_t* cnt_ptr = &cnt[0] if item.shape[0] else NULL
    cdef const uint8_t* appr_ptr = &appr[0] if item.shape[0] else NULL
    cdef Py_ssize_t settled = 0, c0, c1
    cdef BillSums sums[CHUNK]
    cdef PersonAttrs attrs_copy[CHUNK]
    cdef volatile uint8_t state_touch[CHUNK]
    with nogil:
        # Two passes per chunk of bills. The line pass copies each person's attributes into
        # ``attrs_copy`` (it needs the person type), and a loop of nothing but loads touches each
        # person's state record: the loads are independent, so the processor has the whole chunk's
        # cache misses in flight at once, where in the state pass they would come one bill at a time
        # behind a few hundred instructions each. (Prefetches alone did not do it: any distance from 0
        # to 128 bills measured the same; the touch loop took 10^7 persons from 10.3 to 12.1 M bills/s.)
        # ``state_touch`` is volatile so that the compiler keeps loads whose values nobody reads. The
        # state pass then finds the attributes, the line totals (``sums``) and the state in cache.
        # Chunks are small so that a chunk's records (32 x 96 bytes) and their pages stay in the
        # first-level cache and TLB between the passes (256 bills per chunk measured 35% slower on a
        # 10^7-person population).
        c0 = 0
        while c0 < n:
            c1 = c0 + CHUNK if c0 + CHUNK < n else n
            for i in range(c0, c1):
                if i + PF_DISTANCE < n:
                    MS_PREFETCH_R(&attrs_all[person[i + PF_DISTANCE]])
                    MS_PREFETCH_W(&state_all[person[i + PF_DISTANCE]])
                attrs_copy[i - c0] = attrs_all[person[i]]
            for i in range(c0, c1):
                state_touch[i - c0] = state_all[person[i]].acc_year
            price_lines(pol, attrs_copy, c1 - c0, &line_start[c0], item_ptr, pric_ptr, cnt_ptr, appr_ptr,
                        line_ptr, full, sums)
            for i in range(c0, c1):
                if settle_state(pol, &attrs_copy[i - c0], &state_all[person[i]], &sums[i - c0], day[i], year[i],
                                month[i], med_type[i], tier[i], treat_region[i], acct_flag[i], adm[i],
                                saf_cash[i], line_start[i], line_start[i + 1], out_ptr + i * ncols, line_ptr,
                                full, presettle) == OK:
                    settled += 1
            c0 = c1
        MS_STORE_FENCE()
    return settled


def cancel(uint8_t[::1] state_bytes, Py_ssize_t person, const int64_t[::1] original, int role, restore):
    """Move one person's state back by exactly a settlement's amounts. Returns (status, balance after).

    A per-admission settlement's admission moves as ``role`` says (CANCEL_*, as the reference's cancel):
    the one in progress gives back its deductible met and the settlement, and once none is left it no
    longer counts and ``restore`` (adm_id, adm_ded_std, adm_ded_met, adm_nsetl) is in progress instead;
    an earlier admission's last live settlement un-counts it."""
    if original.shape[0] != N_COLS:
        raise ValueError("original must be a full row of %d columns" % N_COLS)
    if person < 0 or (person + 1) * <Py_ssize_t>sizeof(PersonState) > state_bytes.shape[0]:
        raise IndexError("person %d out of range" % person)
    if role != CANCEL_IN_PROGRESS and role != CANCEL_PAST and role != CANCEL_PAST_LAST:
        raise ValueError("unknown cancel role %d" % role)
    cdef int32_t restore_id, restore_std, restore_met
    cdef uint16_t restore_nsetl
    restore_id, restore_std, restore_met, restore_nsetl = restore
    cdef PersonState* st = (<PersonState*> &state_bytes[0]) + person
    cdef int g = <int>original[C_GROUP]
    if st.acc_year != 0 and original[C_YEAR] < st.acc_year + YEAR_BASE:
        return YEAR_CLOSED, st.balance
    if original[C_ACCT] > MAX_BALANCE_FEN - st.balance:  # the refund would pass the balance bound: nothing moves
        return BALANCE_LIMIT, st.balance
    st.balance += original[C_ACCT]
    if original[C_DED_KIND]:
        if role == CANCEL_IN_PROGRESS:
            st.adm_ded_met -= <int32_t>original[C_DEDC]
            st.adm_nsetl -= 1
            if st.adm_nsetl == 0:
                if st.adm_count > 0:
                    st.adm_count -= 1
                st.adm_id = restore_id
                st.adm_ded_std = restore_std
                st.adm_ded_met = restore_met
                st.adm_nsetl = restore_nsetl
        elif role == CANCEL_PAST_LAST and st.adm_count > 0:
            st.adm_count -= 1
    else:
        st.ded_met[g] -= <int32_t>original[C_DEDC]
    st.pooled_paid[g] -= <int32_t>original[C_HIFP]
    st.t2_paid -= <int32_t>(original[C_HIFOB] + original[C_HIFMI])
    st.t2_base -= original[C_T2_ADD]
    st.maf_paid -= <int32_t>original[C_MAF]
    return OK, st.balance


def bare_debit(int64_t[::1] balance, const int32_t[::1] person, const int64_t[::1] amount, Py_ssize_t stride=1):
    """The memory-access limit: ``balance[person * stride] -= amount`` over a stream, nothing else.

    With ``stride`` 8 over the state array viewed as int64 it touches one 64-byte record per bill, as the
    kernel does; with a dense balance array (stride 1) it is the floor for any layout.
    """
    cdef Py_ssize_t i, n = person.shape[0]
    with nogil:
        for i in range(n):
            if i + PF_DISTANCE < n:
                MS_PREFETCH_W(&balance[person[i + PF_DISTANCE] * stride])
            balance[person[i] * stride] -= amount[i]


cdef inline void year_month_of(int32_t day, int16_t* year, int32_t* month) noexcept nogil:
    """Civil year and month index (year*12+month-1) of a day number (days since 1970-01-01).

    Howard Hinnant's days-to-civil algorithm; the batch path gets the same values from numpy.
    """
    cdef int64_t z = <int64_t>day + 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t y = yoe + era * 400
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    cdef int64_t m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    year[0] = <int16_t>y
    month[0] = <int32_t>(y * 12 + m - 1)


cdef class Session:
    """The pre-validated single-bill fast path: one bill per call, no batch to build.

    Arguments are already-resolved indices (person row, med type, tier, region, catalogue items of the
    treatment region in force on the bill's date), as in a BillBatch. Indices and bounds are checked
    here (cheap integer compares) so a bad call raises instead of touching memory it should not; the
    catalogue-version and caller-total checks are the caller's (BillBatch.validate does them).
    Results land in ``out`` (one row of COLUMN_NAMES) and ``lines`` (one row per line).

    A bill's lines go in either as sequences (:meth:`settle`) or written beforehand into the input
    buffers ``item_in``, ``pric_in``, ``cnt_in`` and ``appr_in`` (:meth:`settle_loaded`; medsettle._plain's
    route writes them there straight from a bill's text).
    """

    cdef CorePolicy pol
    cdef object _attrs, _state
    cdef const PersonAttrs* attrs
    cdef PersonState* state
    cdef Py_ssize_t n_persons, n_regions
    cdef public object out, lines, item_in, pric_in, cnt_in, appr_in
    cdef int64_t* out_ptr
    cdef int64_t* lines_ptr
    cdef int32_t* item_buf
    cdef int64_t* pric_buf
    cdef int64_t* cnt_buf
    cdef uint8_t* appr_buf
    cdef int64_t line_start[2]

    def __init__(self, CorePolicy pol, attrs, state, Py_ssize_t n_regions):
        import numpy as np
        cdef uint8_t[::1] attrs_bytes = attrs.view(np.uint8)
        cdef uint8_t[::1] state_bytes = state.view(np.uint8)
        if attrs_bytes.shape[0] // sizeof(PersonAttrs) != state_bytes.shape[0] // sizeof(PersonState):
            raise ValueError("state and attrs have different numbers of persons")
        self.pol = pol
        self._attrs = attrs
        self._state = state
        self.n_persons = state_bytes.shape[0] // sizeof(PersonState)
        self.n_regions = n_regions
        self.attrs = <const PersonAttrs*> &attrs_bytes[0] if self.n_persons else NULL
        self.state = <PersonState*> &state_bytes[0] if self.n_persons else NULL
        self.out = np.zeros(N_COLS, np.int64)
        self.lines = np.zeros((MAX_LINES, N_LINE_COLS), np.int64)
        self.out_ptr = <int64_t*> <size_t> self.out.ctypes.data
        self.lines_ptr = <int64_t*> <size_t> self.lines.ctypes.data
        self.item_in = np.zeros(MAX_LINES, np.int32)
        self.pric_in = np.zeros(MAX_LINES, np.int64)
        self.cnt_in = np.zeros(MAX_LINES, np.int64)
        self.appr_in = np.zeros(MAX_LINES, np.uint8)
        self.item_buf = <int32_t*> <size_t> self.item_in.ctypes.data
        self.pric_buf = <int64_t*> <size_t> self.pric_in.ctypes.data
        self.cnt_buf = <int64_t*> <size_t> self.cnt_in.ctypes.data
        self.appr_buf = <uint8_t*> <size_t> self.appr_in.ctypes.data

    def settle(self, Py_ssize_t person, int32_t day, int med_type, int tier, int treat_region, int acct_flag,
               int32_t adm, int64_t saf_cash, items, prices, cnts, apprs, bint presettle=False):
        """Settle one bill; return its status (0 settled, else the refusal code)."""
        cdef Py_ssize_t j, n = len(items)
        if n < 1 or n > MAX_LINES or len(prices) != n or len(cnts) != n or len(apprs) != n:
            raise ValueError("a bill has 1 to 1000 lines, with one price, count and approval flag each")
        for j in range(n):
            self.item_buf[j] = items[j]
            self.pric_buf[j] = prices[j]
            self.cnt_buf[j] = cnts[j]
            self.appr_buf[j] = apprs[j]
        return self._settle(person, day, med_type, tier, treat_region, acct_flag, adm, saf_cash, n, presettle)

    def settle_loaded(self, Py_ssize_t person, int32_t day, int med_type, int tier, int treat_region,
                      int acct_flag, int32_t adm, int64_t saf_cash, Py_ssize_t n, bint presettle=False):
        """Settle one bill whose ``n`` lines are in the input buffers; return its status."""
        return self._settle(person, day, med_type, tier, treat_region, acct_flag, adm, saf_cash, n, presettle)

    cdef int _settle(self, Py_ssize_t person, int32_t day, int med_type, int tier, int treat_region,
                     int acct_flag, int32_t adm, int64_t saf_cash, Py_ssize_t n, bint presettle) except -1:
        cdef Py_ssize_t j
        cdef int status
        cdef BillSums sums
        cdef int16_t year
        cdef int32_t month
        if person < 0 or person >= self.n_persons:
            raise ValueError("person %d out of range" % person)
        if not (0 <= med_type < 5 and 0 <= tier < 4 and 0 <= treat_region < self.n_regions and 0 <= acct_flag <= 1):
            raise ValueError("med_type, tier, treat_region or acct_flag out of range")
        if saf_cash < -1 or (saf_cash >= 0 and acct_flag):
            raise ValueError("saf_cash must be -1, or >= 0 with acct_flag 0")
        if n < 1 or n > MAX_LINES:
            raise ValueError("a bill has 1 to 1000 lines")
        for j in range(n):
            if not (0 <= self.item_buf[j] < self.pol.n_items and 0 <= self.pric_buf[j] <= MAX_PRIC_UNITS
                    and 0 < self.cnt_buf[j] <= MAX_CNT_UNITS and self.appr_buf[j] <= 1):
                raise ValueError("line %d: item, pric, cnt or hosp_appr_flag out of bounds" % j)
        year_month_of(day, &year, &month)
        if year < 2000 or year > 2099:
            raise ValueError("the bill's date must be in 2000-2099")
        self.line_start[0] = 0
        self.line_start[1] = n
        price_lines(self.pol, &self.attrs[person], 1, self.line_start, self.item_buf, self.pric_buf, self.cnt_buf,
                    self.appr_buf, self.lines_ptr, True, &sums)
        status = settle_state(self.pol, &self.attrs[person], &self.state[person], &sums, day, year, month,
                              <uint8_t>med_type, <uint8_t>tier, <int16_t>treat_region, <uint8_t>acct_flag, adm,
                              saf_cash, 0, n, self.out_ptr, self.lines_ptr, True, presettle)
        MS_STORE_FENCE()
        return status

    def person_codes(self, Py_ssize_t person):
        """(insutype, psn_type) of a person as indices into INSUTYPES and PSN_TYPES, read from the attrs."""
        if person < 0 or person >= self.n_persons:
            raise ValueError("person %d out of range" % person)
        return self.attrs[person].insutype, self.attrs[person].psn_type


cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object obj)
    bint PyObject_GC_IsTracked(object obj)


def gc_untrack(obj):
    """Take ``obj`` out of the cyclic garbage collector's lists (reference counting still frees it).

    For settlement records: they hold only atoms (str, bytes, int, datetime, a tuple of str), so they can
    never be part of a reference cycle and the collector has nothing to find in them, yet a centre keeps
    millions, and every collection would walk them. CPython untracks tuples and dicts of atoms the same way.
    """
    if PyObject_GC_IsTracked(obj):
        PyObject_GC_UnTrack(obj)
