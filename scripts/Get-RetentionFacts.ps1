<#
.SYNOPSIS
    Collects what `mtkit retention check --windows FACTS.json` needs to know about
    the retention drive (R:) of a Windows master target, as JSON.

.DESCRIPTION
    Writes one JSON object with the raw output of Get-Volume, Get-Partition and
    Get-BitLockerVolume for the drive (the properties mtkit reads, as the cmdlets
    return them), the system drive, the mtkit / MT install location (the "cache
    volume" must not be the retention volume) and the disk numbers of the
    replication target disks. A drive that does not exist gives "Volume": null.

    Windows PowerShell 5.1 writes enum values as numbers; PowerShell 7 with
    -EnumsAsStrings writes .NET enums (BitLocker's) as names. mtkit reads both.

.PARAMETER DriveLetter
    The retention drive. Default R.

.PARAMETER InstallPath
    Where mtkit (or the MT agent) is installed. Default: the folder of this script.

.PARAMETER ReplicationTargetDisks
    Disk numbers (Get-Disk) the master target writes replicated data to.

.PARAMETER OutFile
    Write the JSON there (UTF-8) instead of to the output stream.

.EXAMPLE
    .\Get-RetentionFacts.ps1 -ReplicationTargetDisks 2,3 -OutFile facts.json
    mtkit retention check --windows facts.json
#>
[CmdletBinding()]
param(
    [ValidatePattern('^[A-Za-z]$')]
    [string] $DriveLetter = 'R',
    [string] $InstallPath = '',
    [int[]] $ReplicationTargetDisks = @(),
    [string] $OutFile = ''
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# Keeps only the named properties of a cmdlet's result (CIM instances carry many
# more, some of which ConvertTo-Json cannot serialize); $null stays $null.
function Select-Facts {
    param($Object, [string[]] $Property)
    if ($null -eq $Object) { return $null }
    return ($Object | Select-Object -First 1 -Property $Property)
}

$letter = $DriveLetter.ToUpperInvariant()

$volume = Get-Volume -DriveLetter $letter -ErrorAction SilentlyContinue
$partition = Get-Partition -DriveLetter $letter -ErrorAction SilentlyContinue

# BitLocker's module is absent on Server installs without the feature: then the
# drive cannot be BitLocker-locked.
$bitlocker = $null
if (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue) {
    $bitlocker = Get-BitLockerVolume -MountPoint "$($letter):" -ErrorAction SilentlyContinue
}

if (-not $InstallPath) {
    $InstallPath = Split-Path -Parent $PSCommandPath
}

# Where Windows boots from (the system partition: EFI or "System Reserved") and runs
# from (the boot partition: the Windows volume); neither may hold retention.
$partitionIds = @('DiskNumber', 'PartitionNumber', 'DriveLetter', 'Size')
$systemPartitions = @(Get-Partition | Where-Object { $_.IsSystem } | Select-Object -Property $partitionIds)
$bootPartitions = @(Get-Partition | Where-Object { $_.IsBoot } | Select-Object -Property $partitionIds)

$facts = [ordered]@{
    CollectedAt            = (Get-Date).ToUniversalTime().ToString('o')
    PSVersion              = $PSVersionTable.PSVersion.ToString()
    ComputerName           = $env:COMPUTERNAME
    SystemDrive            = $env:SystemDrive
    InstallPath            = $InstallPath
    ReplicationTargetDisks = @($ReplicationTargetDisks)
    SystemPartitions       = $systemPartitions
    BootPartitions         = $bootPartitions
    Volume                 = Select-Facts $volume @(
        'DriveLetter', 'FileSystem', 'FileSystemType', 'FileSystemLabel', 'DriveType',
        'HealthStatus', 'OperationalStatus', 'Size', 'SizeRemaining',
        'AllocationUnitSize', 'Path', 'UniqueId')
    Partition              = Select-Facts $partition @(
        'DiskNumber', 'PartitionNumber', 'DriveLetter', 'Offset', 'Size', 'Type',
        'MbrType', 'GptType', 'IsBoot', 'IsSystem', 'IsActive', 'IsHidden',
        'IsReadOnly', 'IsOffline', 'AccessPaths', 'Guid')
    BitLocker              = Select-Facts $bitlocker @(
        'MountPoint', 'VolumeType', 'VolumeStatus', 'ProtectionStatus', 'LockStatus',
        'EncryptionPercentage', 'EncryptionMethod', 'CapacityGB')
}

$json = $facts | ConvertTo-Json -Depth 4
if ($OutFile) {
    # UTF-8 in both PowerShell editions (5.1's -Encoding UTF8 adds a BOM; mtkit skips it).
    $json | Out-File -FilePath $OutFile -Encoding UTF8
} else {
    $json
}
