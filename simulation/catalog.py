"""Vocabularies of the synthetic world and the segment-level effects that make
latent traits partly predictable from public attributes.

Effects are on the log-odds scale unless named otherwise. They are the
*predictable* part of each trait; `simulation.world` adds idiosyncratic noise
that only a contact's history reveals.
"""
from __future__ import annotations

import numpy as np

INDUSTRIES = ("software", "finance", "healthcare", "retail", "manufacturing", "education", "media", "nonprofit")
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SENIORITIES = ("ic", "manager", "director", "executive")
SIGNUP_SOURCES = ("form", "webinar", "import", "referral", "purchase")
DOMAIN_KINDS = ("corporate", "free_mail", "role", "disposable", "typo")
TOPICS = ("product", "education", "case_study", "event", "promotion", "news")
FORMATS = ("newsletter", "plain", "promo", "digest")

# (country, IANA zone, share of contacts): DST zones on both hemispheres,
# non-DST zones and one 45-minute offset.
TIMEZONES = (
    ("US", "America/New_York", 0.15),
    ("US", "America/Chicago", 0.08),
    ("US", "America/Denver", 0.03),
    ("US", "America/Los_Angeles", 0.09),
    ("CA", "America/Toronto", 0.03),
    ("CA", "America/Vancouver", 0.01),
    ("MX", "America/Mexico_City", 0.02),
    ("BR", "America/Sao_Paulo", 0.03),
    ("GB", "Europe/London", 0.08),
    ("IE", "Europe/Dublin", 0.01),
    ("DE", "Europe/Berlin", 0.06),
    ("FR", "Europe/Paris", 0.04),
    ("NL", "Europe/Amsterdam", 0.02),
    ("ES", "Europe/Madrid", 0.02),
    ("SE", "Europe/Stockholm", 0.01),
    ("PL", "Europe/Warsaw", 0.01),
    ("ZA", "Africa/Johannesburg", 0.01),
    ("AE", "Asia/Dubai", 0.01),
    ("IN", "Asia/Kolkata", 0.08),
    ("NP", "Asia/Kathmandu", 0.005),
    ("SG", "Asia/Singapore", 0.02),
    ("JP", "Asia/Tokyo", 0.02),
    ("AU", "Australia/Sydney", 0.03),
    ("AU", "Australia/Perth", 0.005),
    ("NZ", "Pacific/Auckland", 0.01),
)

COUNTRY_TLD = {"DE": "de", "FR": "fr", "GB": "co.uk", "NL": "nl", "ES": "es", "SE": "se", "PL": "pl",
               "IN": "in", "JP": "jp", "AU": "com.au", "BR": "com.br", "MX": "mx", "IE": "ie", "NZ": "co.nz"}

FREE_MAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "gmx.de",
                     "web.de", "proton.me", "aol.com")
TYPO_DOMAINS = ("gmial.com", "gmal.com", "gmail.con", "hotmial.com", "yaho.com", "outlok.com", "gnail.com")
DISPOSABLE_DOMAINS = ("mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com",
                      "trashmail.com", "sharklasers.com")
ROLE_LOCAL_PARTS = ("info", "sales", "admin", "marketing", "support", "office", "contact", "hello")
COMPANY_STEMS = ("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "soylent", "tyrell",
                 "cyberdyne", "wonka", "aperture", "massive", "piedpiper", "stark", "wayne", "oscorp",
                 "nakatomi", "dunder", "prestige", "gringotts", "monarch", "sirius", "virtucon", "zorg")
COMPANY_SUFFIXES = ("", "labs", "group", "corp", "systems", "partners", "digital", "works", "hq")
FIRST_NAMES = ("anna", "ben", "carla", "david", "elena", "farid", "grace", "hiro", "ines", "jon", "kavya",
               "liam", "mei", "nina", "omar", "priya", "quinn", "rosa", "sam", "tomas", "uma", "viktor",
               "wen", "ximena", "yusuf", "zoe", "arjun", "bea", "chen", "dana", "emil", "fatima")
LAST_NAMES = ("smith", "mueller", "garcia", "patel", "kim", "nguyen", "rossi", "dubois", "jansen",
              "kowalski", "silva", "tanaka", "brown", "schmidt", "lopez", "singh", "wang", "martin",
              "novak", "ahmed", "berg", "costa", "fischer", "ivanova", "okafor", "larsen")

# --- segment effects on traits (rows follow the vocabularies above) -------------
# base engagement (open log-odds)
ENG_INDUSTRY = np.array([0.10, -0.15, -0.05, 0.15, -0.25, 0.30, 0.20, 0.25])
ENG_SIZE = np.array([0.20, 0.10, 0.0, -0.10, -0.25])
ENG_SENIORITY = np.array([0.10, 0.05, -0.10, -0.30])
ENG_SOURCE = np.array([0.0, 0.35, -0.55, 0.30, 0.20])
ENG_DOMAIN = np.array([0.10, 0.0, -0.60, -0.90, 0.0])

# conversion propensity (conversion-given-click log-odds)
CONV_INDUSTRY = np.array([0.35, 0.20, 0.0, 0.15, -0.10, -0.40, -0.20, -0.50])
CONV_SIZE = np.array([-0.50, -0.15, 0.15, 0.35, 0.30])
CONV_SENIORITY = np.array([-0.35, 0.05, 0.35, 0.55])
CONV_SOURCE = np.array([0.0, 0.40, -0.50, 0.55, 0.70])
CONV_DOMAIN = np.array([0.30, -0.20, -0.40, -1.20, -0.30])

# preferred local send hour on weekdays by seniority (executives read early,
# individual contributors mid-morning) and industry shift (hours)
PEAK_WEEKDAY_SENIORITY = np.array([10.0, 9.0, 8.0, 7.0])
PEAK_SHIFT_INDUSTRY = np.array([0.5, -0.5, -1.0, 1.0, -1.0, 1.5, 1.0, 0.5])
EVENING_READER_SHARE = 0.22  # share of contacts whose weekday peak is in the evening instead

# topic affinity: industry x topic and seniority x topic
TOPIC_INDUSTRY = np.array([
    # product educ  case  event promo news
    [0.6, 0.2, 0.3, 0.0, -0.3, 0.2],   # software
    [0.0, 0.1, 0.5, 0.2, -0.4, 0.5],   # finance
    [-0.2, 0.6, 0.3, 0.2, -0.3, 0.1],  # healthcare
    [0.1, -0.2, 0.0, -0.1, 0.8, 0.0],  # retail
    [0.3, 0.0, 0.5, 0.1, 0.0, -0.3],   # manufacturing
    [-0.1, 0.8, 0.0, 0.4, -0.2, 0.0],  # education
    [0.0, 0.0, -0.1, 0.5, 0.1, 0.6],   # media
    [-0.3, 0.5, 0.2, 0.6, -0.5, 0.1],  # nonprofit
])
TOPIC_SENIORITY = np.array([
    [0.3, 0.4, -0.2, 0.0, 0.1, -0.2],  # ic
    [0.1, 0.1, 0.1, 0.1, 0.0, 0.0],    # manager
    [0.0, -0.2, 0.4, 0.1, -0.1, 0.2],  # director
    [-0.2, -0.4, 0.5, 0.2, -0.3, 0.4], # executive
])

# fatigue sensitivity (log scale) and hard-bounce chance
FATIGUE_SOURCE = np.array([0.0, -0.1, 0.45, -0.2, -0.3])
FATIGUE_DOMAIN = np.array([-0.1, 0.2, 0.3, 0.3, 0.0])
INVALID_ADDRESS_SHARE = np.array([0.01, 0.005, 0.03, 0.40, 0.90])

# domain-kind mix by signup source (rows: sources, cols: DOMAIN_KINDS)
DOMAIN_MIX_SOURCE = np.array([
    [0.45, 0.40, 0.03, 0.07, 0.05],  # form
    [0.75, 0.20, 0.02, 0.02, 0.01],  # webinar
    [0.60, 0.20, 0.12, 0.02, 0.06],  # import
    [0.70, 0.27, 0.02, 0.00, 0.01],  # referral
    [0.55, 0.42, 0.01, 0.01, 0.01],  # purchase
])
SOURCE_SHARE = np.array([0.40, 0.15, 0.20, 0.10, 0.15])
INDUSTRY_SHARE = np.array([0.22, 0.12, 0.11, 0.14, 0.11, 0.10, 0.10, 0.10])
SIZE_SHARE = np.array([0.18, 0.24, 0.25, 0.19, 0.14])
SENIORITY_SHARE = np.array([0.45, 0.30, 0.15, 0.10])

# revenue per conversion: log-mean by company size
VALUE_LOG_MEAN_SIZE = np.log(np.array([80.0, 200.0, 500.0, 1200.0, 3000.0]))
VALUE_LOG_SD = 0.6
