package io.lic4es;

/** License tier, in ascending order: {@code COMMUNITY < PRO < TEAM < ENTERPRISE}. */
public enum Tier {
  /** No paid license holds (also before init, after shutdown). */
  COMMUNITY,
  /** Pro. */
  PRO,
  /** Team. */
  TEAM,
  /** Enterprise. */
  ENTERPRISE;

  /**
   * The tier for a {@code lic_tier} value of the C API.
   *
   * @param code the C value
   * @return the tier; anything out of range is {@link #COMMUNITY}
   */
  public static Tier fromCode(int code) {
    switch (code) {
      case 1:
        return PRO;
      case 2:
        return TEAM;
      case 3:
        return ENTERPRISE;
      default:
        return COMMUNITY;
    }
  }

  /**
   * Whether this tier is at least {@code other}.
   *
   * @param other the tier to compare with
   * @return {@code true} when this tier is {@code other} or above
   */
  public boolean atLeast(Tier other) {
    return compareTo(other) >= 0;
  }
}
